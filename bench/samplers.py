"""Samplers on the built-in model: how close each gets to a fine reference, and what a step costs.

- `distance`: for each sampler and step count, the relative RMS distance of the final latent from a
  reference that integrates the same probability-flow ODE finely (DDIM with every train step) from the
  sampler's own first timestep, started from the same noise: the error of the sampler on its own grid.
  The original system's DDIM grid ("leading" spacing, offset 1) starts below t=999 (t=951 for 20 steps), so
  the `ddim (original grid) vs reference from t=999` row also shows what that grid leaves out.
  `ddpm` is stochastic (no ODE) and is left out. Averaged over held-out poses and seeds. The reference
  ends where DDIM with the original settings ends (the noise level of t=0, alphas_cumprod[0] < 1), while
  DPM-Solver++, UniPC and Euler end fully denoised (sigma 0): their distances level off near that gap
  (about 0.05 on the built-in model) instead of going to 0.
- `step_cost`: seconds per sampling step through the pipeline vs a plain UNet forward on the same inputs,
  both warmed up, medians of alternating repeats (the pipeline's overhead per network evaluation).

    python bench/samplers.py [--model builtin] [--poses 2] [--seeds 2] [--json bench/results/samplers.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import publish
from diffusers import DDIMScheduler

from posedraw.data.poses import sample_pose
from posedraw.pipelines import load_pipeline
from posedraw.pipelines.samplers import SAMPLERS, make_sampler

STEPS = (5, 10, 20, 50)


def first_timestep(pipeline, name: str, steps: int) -> int:
    scheduler = make_sampler(name, dict(pipeline.scheduler.config))
    scheduler.set_timesteps(steps)
    return int(scheduler.timesteps[0])


def reference(pipeline, pose, start: torch.Tensor, first: int) -> torch.Tensor:
    """DDIM through every train step from `first` down to 0 ("leading" spacing with first + 1 steps)."""
    fine = DDIMScheduler.from_config(pipeline.scheduler.config, steps_offset=0, timestep_spacing="leading")
    fine.set_timesteps(first + 1)
    assert int(fine.timesteps[0]) == first and len(fine.timesteps) == first + 1, "not a unit-step grid"
    return pipeline([pose], latents=start, sampler=fine, steps=first + 1).latents


def relative(latent: torch.Tensor, target: torch.Tensor) -> float:
    return float((latent - target).pow(2).mean().sqrt() / target.pow(2).mean().sqrt())


def distances(pipeline, poses: list, seeds: int) -> dict[str, dict[str, float]]:
    shape = pipeline.latent_shape
    starts = [torch.randn(1, *shape, generator=torch.Generator().manual_seed(s)) for s in range(seeds)]
    names = [name for name in SAMPLERS if name != "ddpm"]
    table: dict[str, dict[str, float]] = {name: {} for name in [*names, "ddim (original grid) vs reference from t=999"]}
    count = len(poses) * seeds
    for pose in poses:
        for start in starts:
            references: dict[int, torch.Tensor] = {}
            for name in names:
                for steps in STEPS:
                    first = first_timestep(pipeline, name, steps)
                    if first not in references:
                        references[first] = reference(pipeline, pose, start, first)
                    latent = pipeline([pose], latents=start, sampler=name, steps=steps).latents
                    table[name][str(steps)] = (
                        table[name].get(str(steps), 0.0) + relative(latent, references[first]) / count
                    )
                    if name == "ddim":
                        if 999 not in references:
                            references[999] = reference(pipeline, pose, start, 999)
                        full = references[999]
                        row = table["ddim (original grid) vs reference from t=999"]
                        row[str(steps)] = row.get(str(steps), 0.0) + relative(latent, full) / count
    return {name: {k: round(v, 4) for k, v in row.items()} for name, row in table.items()}


def step_cost(pipeline, pose, steps: int = 10, repeats: int = 5) -> dict[str, float]:
    """Per network evaluation: a pipeline step (decode excluded) vs a plain UNet forward, alternating."""
    x = torch.randn(1, *pipeline.latent_shape)
    cond = pipeline.pose_conditioning([pose])
    text = pipeline.text_encoder.null(1) if pipeline.takes_text else None
    context = cond.context if text is None else torch.cat([cond.context, text], 1)
    unet_input = x if cond.maps is None else torch.cat([x, cond.maps], 1)
    t = torch.tensor([500])
    pooled = None
    if getattr(pipeline.unet.config, "class_embed_type", None) == "projection" and text is not None:
        pooled = text.mean(1)

    def plain() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                pipeline.unet(unet_input, t, encoder_hidden_states=context, class_labels=pooled)
        return (time.perf_counter() - start) / steps

    def decode() -> float:
        start = time.perf_counter()
        pipeline.decode_latents(x)
        return time.perf_counter() - start

    def piped() -> float:
        start = time.perf_counter()
        pipeline([pose], seeds=[0], sampler="ddim", steps=steps)
        return (time.perf_counter() - start - decode()) / steps

    plain(), piped()  # warm-up
    plains, pipes = [], []
    for _ in range(repeats):
        plains.append(plain())
        pipes.append(piped())
    step, forward = statistics.median(pipes), statistics.median(plains)
    return {"pipeline_step_s": round(step, 5), "plain_unet_forward_s": round(forward, 5),
            "overhead_ratio": round(step / forward, 3), "repeats": repeats}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--poses", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    pipeline.set_progress_bar_config(disable=True)
    poses = [sample_pose(np.random.default_rng(10**9 + i), 64).label for i in range(args.poses)]
    publish(
        "samplers",
        {"model": args.model, "poses": args.poses, "seeds": args.seeds,
         "first_timesteps": {name: {str(s): first_timestep(pipeline, name, s) for s in STEPS} for name in SAMPLERS},
         "distance": distances(pipeline, poses, args.seeds), "step_cost": step_cost(pipeline, poses[0])},
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()
