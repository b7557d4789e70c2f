"""The measurement the placed pose conditioning exists for: pose fidelity per encoder at an equal budget.

Trains one diffusion model per variant on the same latent cache with the same config, seed and number of
steps, then generates one image for each of N held-out poses (poses the training set never had:
pose-sampler seeds from 10**9 on) and measures PCK@0.1 with the toy pose detector, without guidance and,
for encoders with a null pose, at guidance 2. A variant is an encoder (`legacy`, `tokens`, `maps`,
`tokens+maps`) with optional `:skeleton` (limb maps instead of joint heatmaps) and `:eps` / `:v`
(epsilon / v prediction instead of the config's). Prints one JSON object (the last line of stdout); each
trained pipeline is kept in OUT/<variant>/model.

    python bench/conditioning.py --cache data/toy-latents --vq runs/vq/model --steps 1500 --out runs/conditioning \
        --variants legacy tokens maps tokens+maps tokens+maps:skeleton tokens+maps:eps
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml
from common import publish

from posedraw.data.poses import sample_pose
from posedraw.eval.fidelity import evaluate_pipeline
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.train.driver import RunOptions
from posedraw.train.ldm import train_ldm

REPO = Path(__file__).resolve().parents[1]
MODES = ("legacy", "tokens", "maps", "tokens+maps")
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction"}


def held_out_poses(count: int, size: int = 64):
    return [sample_pose(np.random.default_rng(10**9 + i), size).label for i in range(count)]


def variant_config(config: dict, variant: str) -> dict:
    """The config with the variant's encoder, map kind and prediction; legacy gets no null pose (as the original)."""
    mode, *options = variant.split(":")
    if mode not in MODES or any(o not in ("skeleton", *PREDICTIONS) for o in options):
        raise SystemExit(f"--variants: expected encoder[:skeleton][:eps|:v] with encoder in {MODES}, got {variant!r}")
    config["pose"]["mode"] = mode
    if mode == "legacy":
        config["pose"]["dropout"] = 0.0
    if "skeleton" in options:
        config["pose"]["map_kind"] = "skeleton"
    for short, prediction in PREDICTIONS.items():
        if short in options:
            config["diffusion"]["prediction"] = prediction
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--vq", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ldm-toy.yaml")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--poses", type=int, default=64)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--variants", nargs="+", default=list(MODES), help="encoder[:skeleton][:eps|:v]")
    args = parser.parse_args()
    poses = held_out_poses(args.poses)
    results = {}
    for variant in args.variants:
        config = variant_config(yaml.safe_load(args.config.read_text()), variant)
        run = args.out / variant.replace("+", "_").replace(":", "-")
        run.mkdir(parents=True, exist_ok=True)
        (run / "bench-config.yaml").write_text(yaml.safe_dump(config))
        start = time.perf_counter()
        model = train_ldm(
            run / "bench-config.yaml", args.cache, args.vq, RunOptions(out=run, max_steps=args.steps, progress=False)
        )
        minutes = (time.perf_counter() - start) / 60
        pipeline = KeypointLDMPipeline.from_pretrained(model)
        pipeline.set_progress_bar_config(disable=True)
        results[variant] = {"train_minutes": round(minutes, 1), "prediction": config["diffusion"]["prediction"]}
        for guidance in (1.0, 2.0) if config["pose"]["dropout"] > 0 else (1.0,):
            report = evaluate_pipeline(pipeline, poses, list(range(len(poses))), "toy", steps=20, guidance=guidance)
            results[variant][f"guidance {guidance:g}"] = {
                "pck@0.1": round(report.pck, 4),
                "oks": round(report.oks, 4),
                "left_right_swap_rate": round(report.swap_rate, 4),
            }
        print(json.dumps({variant: results[variant]}), flush=True)
    fields = {"steps": args.steps, "held_out_poses": args.poses, "detector": "toy", "results": results}
    publish("conditioning", fields, args.json)


if __name__ == "__main__":
    main()
