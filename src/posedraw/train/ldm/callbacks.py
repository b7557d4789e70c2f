"""Callbacks of the diffusion stage: sample grids and validation (the driver's own, for every stage, live in
train/driver.py; validation's logic in train/validation.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from posedraw.io import save_image_atomic
from posedraw.pose import Pose
from posedraw.train.ldm.config import LDMRunConfig
from posedraw.train.ldm.export import build_pipeline
from posedraw.train.ldm.module import LatentDiffusionModule
from posedraw.train.validation import Validation, stage_validation


class SampleGrid(Callback):
    """Every `every` steps: conditioning pose | EMA sample for fixed validation poses, as one PNG, so a
    run shows whether its drawings follow their poses long before it ends."""

    def __init__(self, poses: list[Pose], vq: torch.nn.Module, folder: Path, every: int, steps: int) -> None:
        self.poses, self.vq, self.folder, self.every, self.steps = poses, vq, folder, every, steps

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if trainer.is_global_zero and trainer.global_step % self.every == 0:
            self.write(module, trainer.global_step)  # type: ignore[arg-type]

    def write(self, module: LatentDiffusionModule, step: int) -> Path:
        from posedraw.pipelines.outputs import pose_sample_grid

        pipeline = build_pipeline(module, self.vq).to(module.device)
        poses = pipeline.drawable(self.poses)
        images = pipeline(poses, seeds=list(range(len(poses))), steps=self.steps).images
        path = self.folder / f"samples_{step:07d}.png"
        save_image_atomic(pose_sample_grid(self.poses, images), path)
        return path


def ldm_validation(config: LDMRunConfig, stream: Any, cache: Path, vq: torch.nn.Module, out: Path) -> Validation | None:
    """The diffusion stage's validation (train/validation.py) when the config asks for it: the EMA weights
    draw the held-out poses with `validation.steps` sampler steps. Takes the held-out samples out of
    `stream`."""
    from posedraw.models.vq import decode

    return stage_validation(
        config.validation, stream, cache, lambda latents: decode(vq, latents),
        lambda module: build_pipeline(module, vq), out, steps=config.validation.steps,
    )  # fmt: skip
