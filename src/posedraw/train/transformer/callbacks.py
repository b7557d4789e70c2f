"""Callbacks of the code transformer stage: validation (its logic is train/validation.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from posedraw.pose import Pose
from posedraw.train.transformer.config import TransformerRunConfig
from posedraw.train.transformer.export import build_pipeline
from posedraw.train.validation import Validation, announce, feature_extractor, held_out_set


def transformer_validation(
    config: TransformerRunConfig, stream: Any, cache: Path, vq: torch.nn.Module, out: Path
) -> Validation | None:
    """The transformer stage's validation when the config asks for it: the trained weights (this stage
    keeps no EMA) draw the held-out poses with the pipeline's default sampling. Takes the held-out samples
    out of `stream`."""
    settings = config.validation
    if not settings.enabled:
        return None
    from posedraw.models.vq import decode_codes

    extractor = feature_extractor(settings)
    held = held_out_set(settings, stream, cache, lambda codes: decode_codes(vq, codes), extractor)

    def draw(module: L.LightningModule, poses: list[Pose], seeds: list[int]) -> torch.Tensor:
        pipeline = build_pipeline(module, vq).to(module.device)  # type: ignore[arg-type]
        return pipeline(poses, seeds=seeds).images

    return Validation(settings, held, draw, out, extractor, say=announce)
