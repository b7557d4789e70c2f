"""The diffusion stage assembled for the driver: config, data, networks, callbacks and export."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from posedraw.config import load_config
from posedraw.data.device_cache import check_cache_mode
from posedraw.data.latents import collate_cached
from posedraw.models.vq import load_vq
from posedraw.pose import Pose
from posedraw.train.datamodule import StreamData
from posedraw.train.driver import RunOptions, Stage, run_stage
from posedraw.train.ldm.callbacks import SampleGrid, ldm_validation
from posedraw.train.ldm.config import LDMRunConfig
from posedraw.train.ldm.data import LatentData
from posedraw.train.ldm.export import export_model, start_from
from posedraw.train.ldm.module import LatentDiffusionModule
from posedraw.train.ldm.networks import make_text_encoder
from posedraw.train.validation import with_keep_best


def ldm_stage(
    config_path: Path,
    latents: Path,
    vq_dir: Path,
    out: Path,
    validation: list[Pose] | None = None,
    init: str | Path | None = None,
    keep_best: str | None = None,
    compile: bool = False,
    cache_on_device: str = "auto",
) -> Stage:
    """The diffusion stage: cached latents in, a pipeline folder (EMA weights) out; `init` to fine-tune.
    `validation`: the sample grids' poses; `keep_best`: overrides the config's `validation.keep_best`;
    `compile`: torch.compile the UNet; `cache_on_device`: auto | on | off, the latents held on the training
    device (both in docs/speed.md)."""
    check_cache_mode(cache_on_device)
    config = with_keep_best(load_config(LDMRunConfig, config_path), keep_best)
    measure = config.diffusion.scale_factor <= 0
    data = LatentData.read(latents, measure, validation is None, config.text.kind == "tags")
    if data.scale is not None:
        config = replace(config, diffusion=replace(config.diffusion, scale_factor=round(data.scale, 5)))
    train = config.train
    vq = load_vq(vq_dir)  # checked before training, not after
    grid = SampleGrid(data.validation if validation is None else validation, vq, out / "samples",
                      train.sample_every, train.sample_steps)  # fmt: skip
    torch.manual_seed(train.seed)
    with torch.random.fork_rng(devices=[]):  # the networks start the same with or without a text encoder
        text_encoder = make_text_encoder(config, data.tag_lists, str(latents))
    module = LatentDiffusionModule(config, text_encoder, compile=compile)
    if init is not None:
        start_from(module, init)

    def export(module: LatentDiffusionModule, steps: int) -> Path:
        model_dir = export_model(module, vq, out / "model", steps, init)
        grid.write(module, steps)
        return model_dir

    stream = data.stream(train.seed)
    validate = ldm_validation(config, stream, latents, vq, out)  # takes the held-out samples out of the stream
    return Stage(
        name="ldm", config=config, module=module,
        data=StreamData(stream, train.batch_size, collate_cached, train.num_workers, module.pose_encoder.prepare,
                        cache_on_device),
        max_steps=train.max_steps,
        checkpoint_every=train.checkpoint_every, seed=train.seed, export=export,
        callbacks=[grid] if validate is None else [grid, validate],
    )  # fmt: skip


def train_ldm(
    config_path: Path,
    latents: Path,
    vq_dir: Path,
    options: RunOptions,
    validation: list[Pose] | None = None,
    init: str | Path | None = None,
    keep_best: str | None = None,
    compile: bool = False,
    cache_on_device: str = "auto",
) -> Path | None:
    """Train (or resume) a diffusion model on a latent cache; export `<out>/model` (a pipeline folder).
    `init`: start from that diffusion model's weights (ignored when resuming: the checkpoint has them)."""
    stage = ldm_stage(config_path, latents, vq_dir, options.out, validation, init, keep_best, compile, cache_on_device)
    return run_stage(stage, options)
