"""Benchmark one diffusion training step at the original system's size (`ldm-kp-f4`, batch 2, CPU).

Prints one JSON object: seconds per step and peak memory when training reads the latent cache, when it
encodes the images with the VQ-f4 encoder every step (the original's way), and with gradient
checkpointing. Random weights (the cost does not depend on them). Each variant runs in its own process.

    python bench/ldm_train.py [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from common import peak_rss_mb  # noqa: E402

VARIANTS = ("cached_latents", "encode_every_step", "cached_latents_gradient_checkpointing")


def measure(variant: str, steps: int, batch: int) -> dict:
    import numpy as np
    import torch

    from posedraw.config import load_config
    from posedraw.data.poses import sample_pose
    from posedraw.models.vq import build_vq, encode
    from posedraw.train.ldm import LatentDiffusionModule, LDMRunConfig
    from posedraw.train.vq import VQRunConfig

    config = load_config(LDMRunConfig, REPO / "configs" / "ldm-kp-f4.yaml")
    if variant.endswith("gradient_checkpointing"):
        config = replace(config, unet=replace(config.unet, gradient_checkpointing=True))
    torch.manual_seed(0)
    module = LatentDiffusionModule(config)
    optimizer = module.configure_optimizers()
    poses = [sample_pose(np.random.default_rng(i), 256).label for i in range(batch)]
    latents = torch.randn(batch, 3, 64, 64)
    vq = None
    if variant == "encode_every_step":
        vq = build_vq(load_config(VQRunConfig, REPO / "configs" / "vq-f4.yaml").model).eval()
        images = torch.rand(batch, 3, 256, 256) * 2 - 1

    def step() -> None:
        x = latents
        if vq is not None:
            with torch.no_grad():
                x = encode(vq, images)
        loss = module.loss(x, poses)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "variant": variant,
        "batch": batch,
        "step_s": round(statistics.median(times), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "unet_parameters_m": round(sum(p.numel() for p in module.unet.parameters()) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.batch)))
        return
    results = []
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--one", variant, "--steps", str(args.steps), "--batch", str(args.batch)]
        results.append(
            json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        )
    import os

    print(
        json.dumps(
            {
                "benchmark": "ldm_train",
                "date": time.strftime("%Y-%m-%d"),
                "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine()},
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
