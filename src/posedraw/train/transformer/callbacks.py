"""Callbacks of the code transformer stage: validation (its logic is train/validation.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from posedraw.train.transformer.config import TransformerRunConfig
from posedraw.train.transformer.export import build_pipeline
from posedraw.train.validation import Validation, stage_validation


def transformer_validation(
    config: TransformerRunConfig, stream: Any, cache: Path, vq: torch.nn.Module, out: Path
) -> Validation | None:
    """The transformer stage's validation when the config asks for it: the trained weights (this stage
    keeps no EMA) draw the held-out poses with the pipeline's default sampling. Takes the held-out samples
    out of `stream`."""
    from posedraw.models.vq import decode_codes

    return stage_validation(
        config.validation, stream, cache, lambda codes: decode_codes(vq, codes),
        lambda module: build_pipeline(module, vq), out,
    )  # fmt: skip
