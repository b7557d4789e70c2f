"""Pose fidelity of a diffusion model on single figures and on scenes of 2 and 3 figures.

For each scene size, N held-out scenes (toy-scene seeds from 10**9 on, which no toy data set uses) give
their poses; the model draws one image per pose (seed = index) without and with pose guidance, and the toy
detector reads every person back in a crop around where that person was asked for (see
`posedraw.eval.fidelity`). Reports PCK@0.1 over all joints, the mean per-person PCK@0.1, OKS and the
left/right swap rate, and seconds per image. Writes the JSON object to `--json` and prints it.

    python bench/scenes.py [--model DIR] [--poses 64] [--json bench/results/scenes.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import publish

from posedraw.builtin import builtin_model
from posedraw.data.toy import make_toy_scene
from posedraw.eval.fidelity import evaluate_pipeline
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline

HELD_OUT = 10**9


def held_out_scenes(people: int, count: int, size: int) -> list:
    return [make_toy_scene(HELD_OUT + i, size, people).pose for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="pipeline folder (default: the built-in model)")
    parser.add_argument("--poses", type=int, default=64, help="held-out scenes per scene size")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = args.model or builtin_model()
    pipeline = KeypointLDMPipeline.from_pretrained(model)
    pipeline.set_progress_bar_config(disable=True)
    size = pipeline.vq.config.sample_size
    results = {}
    for people in args.people:
        poses = held_out_scenes(people, args.poses, size)
        for guidance in args.guidance:
            started = time.perf_counter()
            report = evaluate_pipeline(pipeline, poses, list(range(len(poses))), "toy", steps=args.steps,
                                       guidance=guidance)  # fmt: skip
            seconds = time.perf_counter() - started
            name = f"{people} figures, guidance {guidance:g}"
            results[name] = {
                "people": report.people, "pck@0.1": round(report.pck, 4),
                "person_pck@0.1": round(report.person_pck, 4), "oks": round(report.oks, 4),
                "left_right_swap_rate": round(report.swap_rate, 4),
                "seconds_per_image": round(seconds / len(poses), 3),
            }  # fmt: skip
            print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    publish(
        "scenes",
        {
            "model": str(args.model) if args.model else "built-in (src/posedraw/builtin/toy-figures)",
            "held_out_scenes_per_size": args.poses,
            "sampler": "dpm++",
            "steps": args.steps,
            "detector": "toy (one crop per person)",
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
