"""A diffusion training step as `posedraw train ldm` runs it: through the stage driver (Lightning loop, data
from the latent cache, loss, backward, AdamW, EMA update, checkpoint callbacks), not the loss alone.

Builds a small toy data set and its latent cache with the built-in VQ (64 px, 16 x 16 latents), then trains
`--config` (default the built-in model's configs/ldm-toy.yaml) for `--steps` steps on it, in this process,
and times every step from one batch end to the next; the first `--warmup` steps are left out and the
median of the rest is reported. `--variants` adds the same run with gradient checkpointing.

    python bench/ldm_train.py [--steps 30] [--json bench/results/ldm_train.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
from common import peak_rss_mb, publish

from posedraw.builtin import builtin_model
from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.latents import cache_dataset
from posedraw.data.toy import ToyMaker
from posedraw.models.vq import load_vq
from posedraw.train.driver import RunOptions, run_stage
from posedraw.train.ldm import ldm_stage

REPO = Path(__file__).resolve().parents[1]


class StepTimer(L.Callback):
    """Seconds between consecutive batch ends: one whole training step each."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.ends.append(time.perf_counter())


def toy_cache(folder: Path, figures: int) -> Path:
    build_dataset(folder / "toy", ShardPlan(list(range(figures)), figures), ToyMaker(64), 64, progress=False)
    cache_dataset(folder / "toy", load_vq(builtin_model()), folder / "latents", codes=False, progress=False)
    return folder / "latents"


def measure(config: Path, latents: Path, steps: int, warmup: int, checkpointing: bool, folder: Path) -> dict:
    stage = ldm_stage(config, latents, builtin_model(), folder / f"run-{int(checkpointing)}")
    if checkpointing:
        stage.module.unet.enable_gradient_checkpointing()
    stage = replace(stage, checkpoint_every=10**9)  # the cost of a step, not of writing checkpoints
    timer = StepTimer()
    stage.callbacks.append(timer)
    run_stage(stage, RunOptions(folder / f"run-{int(checkpointing)}", "cpu", max_steps=steps, progress=False))
    gaps = [b - a for a, b in zip(timer.ends, timer.ends[1:])][warmup:]
    return {
        "gradient_checkpointing": checkpointing,
        "batch": stage.batch_size,
        "step_s": round(statistics.median(gaps), 4),
        "timed_steps": len(gaps),
        "unet_parameters_m": round(sum(p.numel() for p in stage.module.unet.parameters()) / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "src" / "posedraw" / "configs" / "ldm-toy.yaml")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--figures", type=int, default=256)
    parser.add_argument("--variants", action="store_true", help="also with gradient checkpointing")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        latents = toy_cache(Path(tmp), args.figures)
        rows = [measure(args.config, latents, args.steps, args.warmup, False, Path(tmp))]
        if args.variants:
            rows.append(measure(args.config, latents, args.steps, args.warmup, True, Path(tmp)))
    publish("ldm_train", {"config": str(args.config.relative_to(REPO)), "through": "posedraw.train.driver.run_stage",
                          "results": rows, "peak_rss_mb": round(peak_rss_mb(), 1)}, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
