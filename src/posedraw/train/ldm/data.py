"""What the diffusion stage reads of a latent cache: everything it needs before step 1 in one pass, then
the training stream."""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch

from posedraw.data.latents import CachedSample, cache_source, cache_stream, sample_tags
from posedraw.data.stream import SampleStream
from posedraw.errors import DataError
from posedraw.pose import Pose

#: cached latents the scale is measured on (the first ones, so a resumed run measures the same value)
SCALE_SAMPLES = 512
#: poses of the sample grids when the caller gives none (the first ones of the cache)
VALIDATION_POSES = 4


@dataclass(frozen=True)
class LatentData:
    """A latent cache and what was read of it before training: the latents' measured scale (when the config
    gives none), the validation poses and every sample's tags (when the model learns tags)."""

    cache: Path
    scale: float | None
    validation: list[Pose]
    tag_lists: list[list[str]]

    @classmethod
    def read(cls, cache: Path, measure_scale: bool, want_validation: bool, want_tags: bool) -> LatentData:
        """One pass over the cache in stored order, stopping as soon as nothing more is wanted."""
        source, decode = cache_source(cache, "latent"), CachedSample("latent", flip=0.0)
        decoded = max(SCALE_SAMPLES if measure_scale else 0, VALIDATION_POSES if want_validation else 0)
        latents, poses, tag_lists = [], [], []
        raws = chain.from_iterable(source.read(shard) for shard in range(len(source.counts)))
        for index, raw in enumerate(raws):
            if index >= decoded and not want_tags:
                break
            if index < decoded:
                sample = decode(raw, random.Random(0))
                latents.append(sample["latent"])
                poses.append(sample["pose"])
            if want_tags:
                tag_lists.append(sample_tags(raw))
        if not latents and decoded:
            raise DataError(f"{cache}: the latent cache holds no samples")
        scale = _inverse_std(latents[:SCALE_SAMPLES]) if measure_scale else None
        return cls(Path(cache), scale, poses[:VALIDATION_POSES] if want_validation else [], tag_lists)

    def stream(self, seed: int) -> SampleStream:
        """The training samples, reshuffled every epoch (endless)."""
        return cache_stream(self.cache, "latent", seed=seed)


def _inverse_std(latents: list[torch.Tensor]) -> float:
    """1 / std of the latents: diffusion then sees unit-variance latents (latent-diffusion's scale_by_std)."""
    return float(1.0 / torch.stack(latents).std().clamp_min(1e-6))
