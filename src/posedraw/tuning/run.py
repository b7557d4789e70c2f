"""One tuning request end to end: load CLIP, embed the prompts, tune a batch of latents, write the files.

Shared by `posedraw tune` (one input file) and `posedraw generate --tune-prompt` (every generated image).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import VQModel

from posedraw.models.clip import ClipSpec, load_clip
from posedraw.models.vq import decode
from posedraw.tuning.clip import TuneOptions, similarities, tune
from posedraw.tuning.files import tune_record, write_tuned
from posedraw.tuning.prompts import WeightedPrompt, embed_prompts


@dataclass(frozen=True)
class TuneRequest:
    prompts: list[WeightedPrompt]
    options: TuneOptions
    clip: ClipSpec


@dataclass(frozen=True)
class TunedFile:
    path: Path
    before: list[float]  # CLIP similarity to each prompt, before and after
    after: list[float]


def clip_name(spec: ClipSpec) -> str:
    return f"{spec.model} ({spec.weights or spec.pretrained or 'untrained'})"


def tune_and_write(
    vq: VQModel,
    latents: torch.Tensor,
    request: TuneRequest,
    stems: list[str],
    sources: list[dict[str, Any] | None],
    out: Path,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> list[TunedFile]:
    """Tune `latents` (B, C, h, w, on the VQ's device) and write one tuned PNG (+ latent, strip) per image;
    `on_step(step, clip_loss)` after every step (the studio's progress and cancel)."""
    request.options.check()
    clip = load_clip(request.clip, vq.device)
    embeddings = embed_prompts(clip, request.prompts)
    weights = torch.tensor([p.weight for p in request.prompts])
    with torch.no_grad():
        before = similarities(clip, decode(vq, latents.to(vq.device)).float(), embeddings)
    result = tune(vq, clip, latents.to(vq.device), embeddings, weights, request.options, progress, on_step)
    after = similarities(clip, result.images, embeddings)
    written = []
    for i, (stem, source) in enumerate(zip(stems, sources)):
        record = tune_record(request.prompts, request.options, clip_name(request.clip), before[i], after[i])
        path = write_tuned(out, stem, result, i, record, source)
        written.append(TunedFile(path, before[i].tolist(), after[i].tolist()))
    return written


__all__ = ["TuneRequest", "TunedFile", "tune_and_write"]
