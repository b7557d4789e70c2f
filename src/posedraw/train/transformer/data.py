"""What the transformer stage reads of a code cache before step 1 (its index and every sample's tags), and
what the config takes from it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from posedraw.data.latents import cache_tags, load_cache_index
from posedraw.errors import ConfigError
from posedraw.train.tags import fit_vocabulary
from posedraw.train.transformer.config import TransformerRunConfig


def fit_tags(config: TransformerRunConfig, codes: Path) -> tuple[TransformerRunConfig, list[str]]:
    """With `text.kind: tags`, the tag vocabulary of the code cache and the model's tag sizes from it."""
    if config.text.kind == "none":
        return config, []
    text = config.text
    vocabulary, slots = fit_vocabulary(cache_tags(codes, "codes"), text.min_count, text.max_tags, str(codes))
    return replace(config, model=replace(config.model, max_tags=slots, num_tags=len(vocabulary))), vocabulary


def fit_to_cache(config: TransformerRunConfig, codes: Path) -> TransformerRunConfig:
    """Take the codebook size and grid side from the code cache; a config that states others is an error."""
    index = load_cache_index(codes)
    if not index.get("codes"):
        raise ConfigError(f"{codes}: the cache holds no codes (rebuild it with posedraw data cache-latents --codes)")
    num_codes, grid = int(index["num_codes"]), int(index["latent_shape"][-1])
    for name, have, want in (("num_codes", config.model.num_codes, num_codes), ("grid", config.model.grid, grid)):
        if have not in (0, want):
            raise ConfigError(f"model.{name}: the config says {have}, the code cache {codes} has {want}")
    return replace(config, model=replace(config.model, num_codes=num_codes, grid=grid))
