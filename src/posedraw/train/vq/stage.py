"""The VQGAN stage assembled for the driver: config, images, module, reconstruction grids and export."""

from __future__ import annotations

from pathlib import Path

import torch

from posedraw.config import load_config
from posedraw.errors import ConfigError
from posedraw.models.vq import vq_folder
from posedraw.pipelines.loading import resolve_model
from posedraw.train.datamodule import StreamData
from posedraw.train.driver import RunOptions, Stage, run_stage
from posedraw.train.vq.callbacks import ReconstructionGrid
from posedraw.train.vq.config import VQRunConfig
from posedraw.train.vq.data import training_images
from posedraw.train.vq.export import export_vq, start_vq_from
from posedraw.train.vq.module import VQGANModule


def vq_stage(config_path: Path, data: Path, out: Path, init: str | Path | None = None) -> Stage:
    """The VQGAN stage: images from a posedraw dataset (augmented with their poses) or an image folder;
    with `init`, starting from that model folder's VQ (its network must match the config's)."""
    config = load_config(VQRunConfig, config_path)
    train = config.train
    if train.decoder_only and init is None:
        raise ConfigError(f"{config_path}: train.decoder_only fine-tunes a trained VQ: give it with --init")
    if init is not None:  # a wrong --init fails before the data are read
        vq_folder(resolve_model(str(init)))
    stream, fixed = training_images(data, config, out)
    torch.manual_seed(train.seed)
    module = VQGANModule(config)
    if init is not None:
        start_vq_from(module.vq, init)
    grid = ReconstructionGrid(fixed, out / "samples", train.sample_every)

    def export(module: VQGANModule, steps: int) -> Path:
        model_dir = export_vq(module.vq, out / "model", config, steps)
        grid.write(module, steps)
        return model_dir

    return Stage(
        name="vq", config=config, module=module,
        data=StreamData(stream, train.batch_size, torch.stack, train.num_workers),
        max_steps=train.max_steps, checkpoint_every=train.checkpoint_every, seed=train.seed, export=export,
        callbacks=[grid], unused_parameters=True,
    )  # fmt: skip


def train_vq(config_path: Path, data: Path, options: RunOptions, init: str | Path | None = None) -> Path | None:
    """Train (or resume) a VQGAN; returns the exported model folder `<out>/model` (None on other DDP ranks)."""
    return run_stage(vq_stage(config_path, data, options.out, init), options)
