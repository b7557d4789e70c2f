"""Benchmark dataset building and loading on this machine; prints one JSON object.

- build: `posedraw data build` throughput (images/s) on a generated Danbooru-like folder (toy figures saved
  as 512 px JPEGs with keypoint files in the original format), preparing 256 px samples, 1 and N workers;
- toy: `posedraw data toy` throughput at 64 px;
- load: streaming the built dataset with augmentation through a DataLoader (images/s), 0 and N workers.

    python bench/data_build.py [--images 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import publish
from torch.utils.data import DataLoader

from posedraw.data.augment import Augmentation
from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.filters import FilterConfig
from posedraw.data.ingest import RealMaker, find_inputs, learn_statistics
from posedraw.data.loader import collate, dataset_stream
from posedraw.data.toy import ToyMaker, make_toy_sample
from posedraw.pose import JOINTS, resize


def make_source(root: Path, count: int) -> None:
    (root / "keypoints").mkdir(parents=True)
    names = {j: (j.split("_", 1)[1] + "_" + j.split("_", 1)[0]) if "_" in j else j for j in JOINTS}
    for i in range(count):
        toy = make_toy_sample(i, 512)
        folder = root / "512px" / f"0{i % 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        toy.image.save(folder / f"{1000000 + i}.jpg", quality=95)
        pose = resize(toy.pose, 512, 512)
        doc = {
            names[j]: [float(pose.xy[0, k, 1]), float(pose.xy[0, k, 0])]
            for k, j in enumerate(JOINTS)
            if pose.present[0, k]
        }
        (root / "keypoints" / f"{1000000 + i}.json").write_text(json.dumps(doc))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict = {"cpu_count": os.cpu_count(), "images": args.images}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_source(root / "src", args.images)
        items, _ = find_inputs(root / "src" / "512px", root / "src" / "keypoints")
        maker = RealMaker(256, FilterConfig(), learn_statistics(items), "jpg")
        for workers in sorted({1, args.workers}):
            out = root / f"built{workers}"
            seconds = timed(
                lambda out=out, workers=workers: build_dataset(
                    out, ShardPlan(items, 50), maker, 256, "jpg", workers=workers, progress=False
                )
            )
            results[f"build_images_per_s_{workers}_workers"] = round(args.images / seconds, 1)
        seconds = timed(
            lambda: build_dataset(
                root / "toy",
                ShardPlan(list(range(args.images)), 50),
                ToyMaker(64),
                64,
                workers=args.workers,
                progress=False,
            )
        )
        results[f"toy_images_per_s_{args.workers}_workers"] = round(args.images / seconds, 1)
        for workers in sorted({0, args.workers}):
            dataset = dataset_stream(root / f"built{args.workers}", 256, Augmentation(), epochs=1)
            loader = DataLoader(dataset, batch_size=16, num_workers=workers, collate_fn=collate)
            count = 0

            def load(loader=loader) -> None:
                nonlocal count
                count = sum(len(batch["key"]) for batch in loader)

            seconds = timed(load)
            results[f"load_images_per_s_{workers}_workers"] = round(count / seconds, 1)
        shutil.rmtree(root, ignore_errors=True)
    publish("data_build", results, args.json)


if __name__ == "__main__":
    main()
