"""Does the prompt decide what is drawn, and does the pose survive it? The built-in model with and without tags.

Held-out poses (128 by default; pose-sampler seeds from 10**9, never trained on), each with attributes
drawn at random (hair colour, hair length, outfit and its colour: pose x attributes never seen together in
training), written as a prompt ("red hair, long hair, blue dress"). The same poses and seeds are drawn
without a prompt (the judge then agrees with the drawn-at-random attributes by chance) and with it at text
guidance 1, 2 and 4; the toy attribute judge reads the attributes back at the places the pose locates
(an attribute whose place is outside the picture is not scored: `scored` counts those that were), the toy
detector reads the pose. Two reference rows: the renders of exactly the prompted figures, and those renders
encoded and decoded by the model's VQ (what a model that drew exactly the prompted figures' latents would
score; not a bound: a model can draw latents that decode closer to the named colour than a render's own
latents do).

    python bench/text_conditioning.py [--model builtin] [--json bench/results/text_conditioning.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import publish

from posedraw.data.images import to_tensor
from posedraw.data.poses import sample_pose
from posedraw.data.toy import HAIR, OUTFIT, OUTFITS, random_appearance, render_figure
from posedraw.eval.attributes import WEIGHTS, attribute_accuracy, classify, load_classifier
from posedraw.eval.fidelity import detect, fidelity, in_image_frame
from posedraw.models.vq import decode, encode
from posedraw.pipelines import load_pipeline


def held_out(count: int) -> tuple[list, list[str], torch.Tensor]:
    """Held-out poses, for each a prompt naming four attributes drawn at random, and the toy renders of
    exactly those figures (the prompted attributes, the rest at random)."""
    poses, prompts, renders = [], [], []
    for i in range(count):
        rng = np.random.default_rng(10**9 + i)
        sampled = sample_pose(rng, 64)
        poses.append(sampled.label)
        hair, colour = rng.choice(list(HAIR)), rng.choice(list(OUTFIT))
        length, outfit = rng.choice(["long", "short"]), rng.choice(list(OUTFITS))
        prompts.append(f"{hair} hair, {length} hair, {colour} {outfit}")
        rest = random_appearance(np.random.default_rng([10**9 + i, 1]))
        look = replace(rest, hair=str(hair), long_hair=length == "long", outfit=str(outfit), outfit_colour=str(colour))
        renders.append(to_tensor(render_figure(sampled.full, sampled.head_size, look, 64)))
    return poses, prompts, torch.stack(renders)


def judged(images: torch.Tensor, poses: list, prompts: list[str]) -> dict:
    """Attribute accuracy read at the glimpses of each image's pose, and how many attributes were scored."""
    targets = [in_image_frame(p, images.shape[-1], images.shape[-2]) for p in poses]
    attributes = attribute_accuracy(classify(load_classifier(), images, targets), prompts)
    return {"attribute_accuracy": round(attributes.mean, 4),
            "per_attribute": {n: round(a, 4) for n, a in attributes.accuracy.items()},
            "scored": sum(attributes.counts.values())}  # fmt: skip


def references(pipeline, renders: torch.Tensor, poses: list, prompts: list[str]) -> dict:
    """The prompted figures, rendered and through the model's VQ (encode, decode): what a perfect
    renderer scores, and what a model that reproduced the renders' latents would."""
    with torch.no_grad():
        decoded = decode(pipeline.vq, encode(pipeline.vq, renders)).clamp(-1, 1).float()
    return {"renders": judged(renders, poses, prompts), "renders through the VQ": judged(decoded, poses, prompts)}


def measure(pipeline, poses: list, prompts: list[str], prompted: bool, options: dict) -> dict:
    seeds = list(range(len(poses)))
    started = time.perf_counter()
    given = {"prompt": prompts} if prompted else {}
    images = pipeline(poses, seeds=seeds, **given, **options).images
    seconds = time.perf_counter() - started
    targets = [in_image_frame(p, images.shape[-1], images.shape[-2]) for p in poses]
    pose = fidelity(detect(images, "toy", targets), targets)
    return {
        **judged(images, poses, prompts),
        "pck@0.1": round(pose.pck, 4),
        "seconds_per_image": round(seconds / len(poses), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--poses", type=int, default=128)
    parser.add_argument("--guidance", type=float, default=1.0, help="pose guidance for every row")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    pipeline.set_progress_bar_config(disable=True)
    poses, prompts, renders = held_out(args.poses)
    base = {"steps": 20, "guidance": args.guidance}
    pipeline(poses[:2], seeds=[0, 1], **base)  # warm-up
    rows = {"no prompt (chance)": measure(pipeline, poses, prompts, False, base)}
    for scale in (1.0, 2.0, 4.0):
        rows[f"prompt, text guidance {scale:g}"] = measure(
            pipeline, poses, prompts, True, {**base, "text_guidance": scale}
        )
    rows.update(references(pipeline, renders, poses, prompts))
    for name, row in rows.items():
        print(json.dumps({name: row}), file=sys.stderr, flush=True)
    publish(
        "text_conditioning",
        {
            "model": args.model,
            "held_out_poses": args.poses,
            "sampler": "DPM-Solver++, 20 steps",
            "pose_guidance": args.guidance,
            "judge": {"weights": WEIGHTS.name, "sha256": hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()[:16]},
            "results": rows,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
