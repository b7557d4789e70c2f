"""`posedraw data detect-poses`: pose files for images that have none, resumably.

For every image without `<out>/<id>.json`, run the photo pose detector and write the pose (posedraw
format), or record the failure in `<out>/detect_failures.jsonl`. Rerunning skips what is done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from posedraw.data.images import find_images
from posedraw.errors import PosedrawError
from posedraw.io import load_rgb, write_text_atomic
from posedraw.pose import write_pose
from posedraw.progress import tracked


@dataclass(frozen=True)
class DetectReport:
    images: int
    detected: int
    already_done: int
    failed: int


def detect_folder(images: Path, out: Path, progress: bool = True) -> DetectReport:
    from posedraw.pose.detect import detect_pose

    files = find_images(images)
    out.mkdir(parents=True, exist_ok=True)
    failures_path = out / "detect_failures.jsonl"
    failures = {}
    if failures_path.is_file():
        failures = {json.loads(line)["id"]: line for line in failures_path.read_text().splitlines() if line}
    todo = [f for f in files if not (out / f"{f.stem}.json").exists() and f.stem not in failures]
    detected = failed = 0
    for path in tracked(todo, "detecting poses", enabled=progress):
        try:
            pose = detect_pose(load_rgb(path), source=str(path))
        except PosedrawError as exc:
            failures[path.stem] = json.dumps({"id": path.stem, "image": str(path), "reason": str(exc)})
            failed += 1
            write_text_atomic(failures_path, "".join(line + "\n" for line in failures.values()))
            continue
        write_pose(pose, out / f"{path.stem}.json")
        detected += 1
    return DetectReport(len(files), detected, len(files) - len(todo), failed)
