"""The code transformer stage assembled for the driver: config fitted to the cache, module and export."""

from __future__ import annotations

from pathlib import Path

import torch

from posedraw.config import load_config
from posedraw.data.device_cache import check_cache_mode
from posedraw.data.latents import cache_stream, collate_cached
from posedraw.errors import ConfigError
from posedraw.models.vq import load_vq
from posedraw.train.datamodule import StreamData
from posedraw.train.driver import RunOptions, Stage, run_stage
from posedraw.train.transformer.callbacks import transformer_validation
from posedraw.train.transformer.config import TransformerRunConfig
from posedraw.train.transformer.data import fit_tags, fit_to_cache
from posedraw.train.transformer.export import export_transformer
from posedraw.train.transformer.module import CodeTransformerModule
from posedraw.train.validation import with_keep_best


def transformer_stage(
    config_path: Path, codes: Path, vq_dir: Path, out: Path, keep_best: str | None = None, cache_on_device: str = "auto"
) -> Stage:
    """The code transformer stage: cached codes in, a model folder out; `keep_best` overrides the config's
    `validation.keep_best`; `cache_on_device`: auto | on | off, the codes held on the training device
    (docs/speed.md)."""
    check_cache_mode(cache_on_device)
    config = with_keep_best(load_config(TransformerRunConfig, config_path), keep_best)
    config, tags = fit_tags(fit_to_cache(config, codes), codes)
    vq = load_vq(vq_dir)
    if vq.config.num_vq_embeddings != config.model.num_codes:
        raise ConfigError(
            f"{vq_dir}: the VQ has {vq.config.num_vq_embeddings} codes, the cache {config.model.num_codes}"
        )
    train = config.train
    stream = cache_stream(codes, "codes", seed=train.seed)
    validate = transformer_validation(config, stream, codes, vq, out)  # takes the held-out samples out of the stream
    torch.manual_seed(train.seed)
    module = CodeTransformerModule(config, tags)
    return Stage(
        name="transformer", config=config, module=module,
        data=StreamData(stream, train.batch_size, collate_cached, train.num_workers, module.pose_encoder.prepare,
                        cache_on_device),
        max_steps=train.max_steps, checkpoint_every=train.checkpoint_every,
        seed=train.seed, export=lambda module, steps: export_transformer(module, vq, out / "model", steps),
        callbacks=[] if validate is None else [validate],
    )  # fmt: skip


def train_transformer(
    config_path: Path,
    codes: Path,
    vq_dir: Path,
    options: RunOptions,
    keep_best: str | None = None,
    cache_on_device: str = "auto",
) -> Path | None:
    """Train (or resume) a code transformer on a code cache; export `<out>/model`."""
    return run_stage(transformer_stage(config_path, codes, vq_dir, options.out, keep_best, cache_on_device), options)
