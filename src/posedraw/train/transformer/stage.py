"""The code transformer stage assembled for the driver: config fitted to the cache, module and export."""

from __future__ import annotations

from pathlib import Path

import torch

from posedraw.config import load_config
from posedraw.data.latents import cache_stream, collate_cached
from posedraw.errors import ConfigError
from posedraw.models.vq import load_vq
from posedraw.train.driver import RunOptions, Stage, run_stage
from posedraw.train.transformer.config import TransformerRunConfig
from posedraw.train.transformer.data import fit_tags, fit_to_cache
from posedraw.train.transformer.export import export_transformer
from posedraw.train.transformer.module import CodeTransformerModule


def transformer_stage(config_path: Path, codes: Path, vq_dir: Path, out: Path) -> Stage:
    """The code transformer stage: cached codes in, a model folder out."""
    config, tags = fit_tags(fit_to_cache(load_config(TransformerRunConfig, config_path), codes), codes)
    vq = load_vq(vq_dir)
    if vq.config.num_vq_embeddings != config.model.num_codes:
        raise ConfigError(
            f"{vq_dir}: the VQ has {vq.config.num_vq_embeddings} codes, the cache {config.model.num_codes}"
        )
    train = config.train
    torch.manual_seed(train.seed)
    return Stage(
        name="transformer", config=config, module=CodeTransformerModule(config, tags),
        stream=cache_stream(codes, "codes", seed=train.seed), collate=collate_cached, batch_size=train.batch_size,
        num_workers=train.num_workers, max_steps=train.max_steps, checkpoint_every=train.checkpoint_every,
        seed=train.seed, export=lambda module, steps: export_transformer(module, vq, out / "model", steps),
    )  # fmt: skip


def train_transformer(config_path: Path, codes: Path, vq_dir: Path, options: RunOptions) -> Path | None:
    """Train (or resume) a code transformer on a code cache; export `<out>/model`."""
    return run_stage(transformer_stage(config_path, codes, vq_dir, options.out), options)
