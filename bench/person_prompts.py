"""Does each figure of a scene get its own prompt? Per-person prompts against one bag prompt, on 2 and 3 figures.

Held-out scenes (64 of each size by default; poses of `make_toy_scene(10**9 + i, 64, people)`, training
used seeds below 10**6), each figure with attributes drawn at random and independently (hair colour, hair
length, outfit and its colour), written as that figure's prompt ("red hair, long hair, blue dress"). The
same poses and seeds are drawn at text guidance 1, 2 and 4 with the per-person prompts (`person_prompts`,
no whole-picture prompt) and, as the baseline, with every figure's tags joined into one whole-picture prompt
(the bag: nothing says which figure has which). The toy attribute judge reads each figure at its own
joints and scores it against its own prompt: accuracy, and leakage (drawn as another figure of the scene
asked for); the toy detector reads the pose (PCK@0.1 per person, and over all joints of all people). A
reference row judges the toy renders of exactly the prompted figures: what a perfect drawer scores (the
judge's own errors and leakage). A model that does not take per-person prompts runs the baseline only.

    python bench/person_prompts.py [--model builtin] [--scenes 64] [--json bench/results/person_prompts.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import publish

from posedraw.data.images import to_tensor
from posedraw.data.toy import HAIR, OUTFIT, OUTFITS, make_toy_scene
from posedraw.devices import resolve_device
from posedraw.eval.attributes import WEIGHTS, classify_people, load_classifier, person_attribute_scores, scene_rows
from posedraw.eval.fidelity import detect, fidelity, in_image_frame
from posedraw.pipelines import load_pipeline
from posedraw.pose import Pose

SIZE = 64
#: what each row should reach: accuracy and PCK at least, leakage at most
TARGETS = {2: {"attribute_accuracy": 0.85, "leakage": 0.05, "person_pck@0.1": 0.85},
           3: {"attribute_accuracy": 0.75, "leakage": 0.08, "person_pck@0.1": 0.7}}  # fmt: skip


def wanted_looks(seed: int, people: int) -> list[dict[str, str | bool]]:
    """Each figure's prompted attributes, drawn at random and independently of the others."""
    rng = np.random.default_rng([seed, people, 1])
    return [{"hair": str(rng.choice(list(HAIR))), "long_hair": bool(rng.random() < 0.5),
             "outfit_colour": str(rng.choice(list(OUTFIT))), "outfit": str(rng.choice(OUTFITS))}
            for _ in range(people)]  # fmt: skip


def prompt_of(look: dict) -> str:
    length = "long" if look["long_hair"] else "short"
    return f"{look['hair']} hair, {length} hair, {look['outfit_colour']} {look['outfit']}"


def held_out(count: int, people: int) -> tuple[list[Pose], list[list[str]], torch.Tensor]:
    """The held-out scenes of `people` figures: poses, per-person prompts and renders of exactly those."""
    poses, prompts, renders = [], [], []
    for i in range(count):
        looks = wanted_looks(10**9 + i, people)
        scene = make_toy_scene(10**9 + i, SIZE, people, looks)
        poses.append(scene.pose)
        prompts.append([prompt_of(look) for look in looks])
        renders.append(to_tensor(scene.image))
    return poses, prompts, torch.stack(renders)


def judged(images: torch.Tensor, poses: list[Pose], prompts: list[list[str]], people: int) -> dict:
    """Each figure's attributes against its own prompt, the pose's fidelity, and whether the targets are met."""
    targets = [in_image_frame(p, images.shape[-1], images.shape[-2]) for p in poses]
    reading = classify_people(load_classifier(), images, targets)
    attributes = person_attribute_scores(reading, [p for scene in prompts for p in scene], scene_rows(targets))
    pose = fidelity(detect(images, "toy", targets), targets)
    summary = attributes.as_dict()
    row = {**{k: summary[k] for k in ("attribute_accuracy", "leakage", "scored", "leaks")},
           "per_attribute": {n: a["accuracy"] for n, a in summary["per_attribute"].items()},
           "person_pck@0.1": round(pose.person_pck, 4), "pck@0.1": round(pose.pck, 4)}  # fmt: skip
    goal = TARGETS[people]
    row["meets_targets"] = bool(row["attribute_accuracy"] >= goal["attribute_accuracy"]
                                and row["leakage"] <= goal["leakage"]
                                and row["person_pck@0.1"] >= goal["person_pck@0.1"])  # fmt: skip
    return row


def measure(pipeline, poses: list[Pose], prompts: list[list[str]], per_person: bool, options: dict) -> dict:
    """Draw the scenes (seeds 0, 1, ...) with per-person prompts or the bag prompt, and judge them."""
    given = {"prompt": "", "person_prompts": prompts} if per_person else {"prompt": [", ".join(p) for p in prompts]}
    started = time.perf_counter()
    images = pipeline(poses, seeds=list(range(len(poses))), **given, **options).images.float().cpu()
    seconds = time.perf_counter() - started
    return {**judged(images, poses, prompts, len(prompts[0])), "seconds_per_image": round(seconds / len(poses), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--scenes", type=int, default=64, help="held-out scenes of each number of figures")
    parser.add_argument("--guidance", type=float, default=1.0, help="pose guidance for every row")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pipeline = load_pipeline(args.model, resolve_device(args.device))
    pipeline.set_progress_bar_config(disable=True)
    base = {"steps": 20, "guidance": args.guidance}
    ways = {"bag prompt": False, **({"per-person prompts": True} if pipeline.takes_person_prompts else {})}
    results = {}  # one table row each: "2 figures, bag prompt, text guidance 1", ...
    for people in (2, 3):
        poses, prompts, renders = held_out(args.scenes, people)
        pipeline(poses[:2], seeds=[0, 1], **base)  # warm-up
        rows = {}
        for scale in (1.0, 2.0, 4.0):
            for way, per_person in ways.items():
                options = {**base, "text_guidance": scale}
                rows[f"{way}, text guidance {scale:g}"] = measure(pipeline, poses, prompts, per_person, options)
        rows["renders of the prompted figures"] = judged(renders, poses, prompts, people)
        for name, row in rows.items():
            results[f"{people} figures, {name}"] = row
            print(json.dumps({f"{people} figures, {name}": row}), file=sys.stderr, flush=True)
    publish(
        "person_prompts",
        {
            "model": args.model,
            "held_out_scenes": args.scenes,
            "sampler": "DPM-Solver++, 20 steps",
            "pose_guidance": args.guidance,
            "per-person prompts": "taken" if pipeline.takes_person_prompts else "not taken by this model",
            "judge": {"weights": WEIGHTS.name, "sha256": hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()[:16]},
            "targets": {f"{people} figures": goal for people, goal in TARGETS.items()},
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
