"""The two built-in generators side by side: the diffusion model and the code transformer.

The same 64 held-out poses (pose-sampler seeds from 10**9, the protocol of bench/conditioning.py) and the
same seeds through each generator, without and with pose guidance; the toy detector reads the pose back.
Reports PCK@0.1, OKS, the left/right swap rate and seconds per image (the whole batch timed after a warm-up
call, one torch thread count as the machine gives). Writes the JSON object to `--json` and prints it.

    python bench/generators.py [--models builtin builtin:transformer] [--json bench/results/generators.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from common import publish

from posedraw.data.poses import sample_pose
from posedraw.eval.fidelity import detect, fidelity, in_image_frame
from posedraw.pipelines import load_pipeline


def held_out_poses(count: int, size: int = 64) -> list:
    return [sample_pose(np.random.default_rng(10**9 + i), size).label for i in range(count)]


def measure(pipeline, poses: list, guidance: float, options: dict) -> dict:
    seeds = list(range(len(poses)))
    pipeline(poses[:2], seeds=seeds[:2], guidance=guidance, **options)  # warm-up
    started = time.perf_counter()
    images = pipeline(poses, seeds=seeds, guidance=guidance, **options).images
    seconds = time.perf_counter() - started
    size = images.shape[-1]
    targets = [in_image_frame(p, size, images.shape[-2]) for p in poses]
    report = fidelity(detect(images, "toy", targets), targets)
    per_image = round(seconds / len(poses), 3)
    return {"pck@0.1": round(report.pck, 4), "oks": round(report.oks, 4),
            "left_right_swap_rate": round(report.swap_rate, 4), "seconds_per_image": per_image}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["builtin", "builtin:transformer"])
    parser.add_argument("--poses", type=int, default=64)
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    poses = held_out_poses(args.poses)
    results = {}
    for model in args.models:
        pipeline = load_pipeline(model)
        pipeline.set_progress_bar_config(disable=True)
        options = {"steps": 20} if pipeline.KIND == "diffusion" else {}
        for guidance in args.guidance:
            name = f"{model} ({pipeline.KIND}), guidance {guidance:g}"
            results[name] = measure(pipeline, poses, guidance, options)
            print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    publish(
        "generators",
        {
            "held_out_poses": args.poses,
            "diffusion": "DPM-Solver++, 20 steps",
            "transformer": "temperature 1, no top-k / top-p, KV cache",
            "detector": "toy",
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
