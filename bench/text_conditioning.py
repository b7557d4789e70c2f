"""Does the prompt decide what is drawn, and does the pose survive it? The built-in model with and without tags.

64 held-out poses (pose-sampler seeds from 10**9, never trained on), each with attributes drawn at random
(hair colour, hair length, outfit and its colour: pose x attributes never seen together in training),
written as a prompt ("red hair, long hair, blue dress"). The same poses and seeds are drawn without a
prompt (the classifier then agrees with the drawn-at-random attributes by chance) and with it at text
guidance 1, 2 and 4; the toy attribute classifier reads the attributes back, the toy detector the pose.

    python bench/text_conditioning.py [--model builtin] [--json bench/results/text_conditioning.json]
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
from posedraw.data.toy import HAIR, OUTFIT, OUTFITS
from posedraw.eval.attributes import attribute_accuracy, classify, load_classifier
from posedraw.eval.fidelity import detect, fidelity, in_image_frame
from posedraw.pipelines import load_pipeline


def held_out(count: int) -> tuple[list, list[str]]:
    """Held-out poses and, for each, a prompt naming four attributes drawn at random."""
    poses, prompts = [], []
    for i in range(count):
        rng = np.random.default_rng(10**9 + i)
        poses.append(sample_pose(rng, 64).label)
        hair, colour = rng.choice(list(HAIR)), rng.choice(list(OUTFIT))
        length, outfit = rng.choice(["long", "short"]), rng.choice(list(OUTFITS))
        prompts.append(f"{hair} hair, {length} hair, {colour} {outfit}")
    return poses, prompts


def measure(pipeline, poses: list, prompts: list[str], prompted: bool, options: dict) -> dict:
    seeds = list(range(len(poses)))
    started = time.perf_counter()
    given = {"prompt": prompts} if prompted else {}
    images = pipeline(poses, seeds=seeds, **given, **options).images
    seconds = time.perf_counter() - started
    targets = [in_image_frame(p, images.shape[-1], images.shape[-2]) for p in poses]
    pose = fidelity(detect(images, "toy", targets), targets)
    attributes = attribute_accuracy(classify(load_classifier(), images), prompts)
    return {
        "attribute_accuracy": round(attributes.mean, 4),
        "per_attribute": {n: round(a, 4) for n, a in attributes.accuracy.items()},
        "pck@0.1": round(pose.pck, 4),
        "seconds_per_image": round(seconds / len(poses), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--poses", type=int, default=64)
    parser.add_argument("--guidance", type=float, default=1.0, help="pose guidance for every row")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    pipeline.set_progress_bar_config(disable=True)
    poses, prompts = held_out(args.poses)
    base = {"steps": 20, "guidance": args.guidance}
    pipeline(poses[:2], seeds=[0, 1], **base)  # warm-up
    rows = {"no prompt (chance)": measure(pipeline, poses, prompts, False, base)}
    for scale in (1.0, 2.0, 4.0):
        rows[f"prompt, text guidance {scale:g}"] = measure(
            pipeline, poses, prompts, True, {**base, "text_guidance": scale}
        )
    for name, row in rows.items():
        print(json.dumps({name: row}), file=sys.stderr, flush=True)
    publish(
        "text_conditioning",
        {
            "model": args.model,
            "held_out_poses": args.poses,
            "sampler": "DPM-Solver++, 20 steps",
            "pose_guidance": args.guidance,
            "results": rows,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
