"""`posedraw demo`: the whole system end to end with no download, in minutes on a CPU.

Make a toy dataset, train a VQ first stage and a pose-conditioned diffusion model briefly, draw held-out
poses (never in the training set), write a pose | sample grid and measure pose fidelity with the toy
detector. Every step is the real one (the same code as the full-size commands), only smaller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from posedraw.configs_path import shipped_config
from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.latents import cache_dataset
from posedraw.data.poses import sample_pose
from posedraw.data.toy import ToyMaker
from posedraw.devices import resolve_device
from posedraw.eval.fidelity import FidelityReport, detect, fidelity, in_image_frame
from posedraw.io import save_image_atomic, write_text_atomic
from posedraw.models.vq import load_vq
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.pipelines.outputs import pose_sample_grid
from posedraw.train.driver import RunOptions
from posedraw.train.ldm import train_ldm
from posedraw.train.vq import train_vq


@dataclass(frozen=True)
class DemoResult:
    grid: Path
    model: Path
    report: FidelityReport


def _config(name: str, out: Path, **sections: dict) -> Path:
    config = yaml.safe_load(shipped_config(name).read_text())
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = out / f"{name}.yaml"
    write_text_atomic(path, yaml.safe_dump(config))
    return path


def run_demo(out: Path, figures: int = 1500, vq_steps: int = 400, ldm_steps: int = 400, device: str = "auto",
             poses: int = 8, say=print) -> DemoResult:  # fmt: skip
    device = resolve_device(device)
    out.mkdir(parents=True, exist_ok=True)
    say(f"1/5 toy dataset: {figures} figures at 64 px")
    build_dataset(out / "data", ShardPlan(list(range(figures)), 250), ToyMaker(64), 64, workers=2)
    say(f"2/5 VQ first stage: {vq_steps} steps")
    vq_dir = train_vq(_config("builtin-vq-f4", out), out / "data", RunOptions(out / "vq", device, max_steps=vq_steps))
    say("3/5 latent cache")
    cache_dataset(out / "data", load_vq(vq_dir, device), out / "latents", codes=False)
    say(f"4/5 diffusion model (tokens + maps): {ldm_steps} steps")
    ldm_dir = train_ldm(
        _config("ldm-toy", out), out / "latents", vq_dir, RunOptions(out / "ldm", device, max_steps=ldm_steps)
    )
    say(f"5/5 drawing {poses} held-out poses")
    pipeline = KeypointLDMPipeline.from_pretrained(ldm_dir).to(device)
    held_out = [sample_pose(np.random.default_rng(10**9 + i), 64).label for i in range(poses)]
    images = pipeline(held_out, seeds=list(range(poses)), steps=20).images
    grid = out / "demo_grid.png"
    save_image_atomic(pose_sample_grid(held_out, images), grid)
    targets = [in_image_frame(p, images.shape[-1], images.shape[-2]) for p in held_out]
    return DemoResult(grid, ldm_dir, fidelity(detect(images.cpu(), "toy"), targets))
