"""Benchmark one VQGAN training step (generator + discriminator, LPIPS on) on this machine.

Prints one JSON object: per config, seconds per step (median of the measured steps) and peak resident
memory of a process that did only that. The LPIPS backbone is untrained here (same compute as the real
one; the weights cannot be downloaded on the benchmark machine). Each config runs in its own process so
peak memory is its own.

    python bench/vq_train.py                     # vq-toy-f4 and vq-f4 at batch 1
    python bench/vq_train.py --configs vq-f8 --batch 2 --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from common import peak_rss_mb, publish  # noqa: E402


def measure(config_name: str, batch: int, steps: int) -> dict:
    import torch

    from posedraw.config import load_config
    from posedraw.train.vq import VQGANModule, VQRunConfig

    config = load_config(VQRunConfig, REPO / "configs" / f"{config_name}.yaml")
    config = replace(config, loss=replace(config.loss, perceptual_backbone="untrained", disc_start=0))
    torch.manual_seed(0)
    module = VQGANModule(config)
    opt_g, opt_d = module.configure_optimizers()
    size = config.model.resolution
    images = torch.rand(batch, 3, size, size) * 2 - 1

    def step() -> None:  # the body of VQGANModule.training_step without a Trainer around it
        out = module.vq(images)
        g_loss, _ = module.loss.generator_loss(
            images, out.sample, out.commit_loss, 1, module.vq.decoder.conv_out.weight
        )
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_loss, _ = module.loss.discriminator_loss(images, out.sample)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()

    def extra_forward() -> None:  # what the original adds per step: a second autoencoder pass for the discriminator
        module.vq(images)

    timings = {}
    for name, fn in (("step", step), ("extra_forward", extra_forward)):
        fn()  # warm-up
        samples = []
        for _ in range(steps):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        timings[name] = statistics.median(samples)
    return {
        "config": config_name,
        "batch": batch,
        "resolution": size,
        "step_s": round(timings["step"], 4),
        "original_two_pass_step_s_estimate": round(timings["step"] + timings["extra_forward"], 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["vq-toy-f4", "vq-f4"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.batch, args.steps)))
        return
    results = []
    for name in args.configs:
        cmd = [sys.executable, __file__, "--one", name, "--batch", str(args.batch), "--steps", str(args.steps)]
        output = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    publish("vq_train", {"results": results}, args.json)


if __name__ == "__main__":
    main()
