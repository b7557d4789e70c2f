"""Prompts for CLIP tuning: `"text:weight"` strings and image files, embedded once before tuning.

A weight is the number after the last colon, when that parses as a number ("colorful:2",
"monochrome:-0.5"); otherwise the whole string is the text with weight 1 ("style: anime"). Negative
weights push the image away from the prompt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from posedraw.data.images import to_tensor
from posedraw.errors import PosedrawError
from posedraw.io import load_rgb
from posedraw.models.clip import Clip


@dataclass(frozen=True)
class WeightedPrompt:
    """A text or an image file, with its weight in the loss (the generators' prompt is `models.text.TextPrompt`)."""

    text: str | None = None
    image: Path | None = None
    weight: float = 1.0

    @property
    def label(self) -> str:
        return self.text if self.text is not None else f"image {self.image}"


def _split_weight(spec: str) -> tuple[str, float]:
    head, sep, tail = spec.rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            return spec, 1.0
        if not math.isfinite(weight):
            raise PosedrawError(f"prompt {spec!r}: the weight must be a finite number")
        return head, weight
    return spec, 1.0


def parse_prompt(spec: str, image: bool = False) -> WeightedPrompt:
    """A `--prompt` (or, with image=True, an `--image-prompt` file path) with an optional `:weight`."""
    body, weight = _split_weight(spec)
    body = body.strip()
    if not body:
        raise PosedrawError(f"prompt {spec!r}: expected 'text' or 'text:weight' with a non-empty text")
    if weight == 0:
        raise PosedrawError(f"prompt {spec!r}: a weight of 0 has no effect; give a positive or negative number")
    if image:
        return WeightedPrompt(image=Path(body), weight=weight)
    return WeightedPrompt(text=body, weight=weight)


@torch.no_grad()
def embed_prompts(clip: Clip, prompts: list[WeightedPrompt]) -> torch.Tensor:
    """Unit CLIP embeddings (P, D), in the order of `prompts`."""
    if not prompts:
        raise PosedrawError("no prompts: give --prompt TEXT (repeatable) or --image-prompt FILE")
    rows = []
    for prompt in prompts:
        if prompt.text is not None:
            rows.append(clip.encode_texts([prompt.text])[0])
        else:
            from PIL import Image

            image = to_tensor(Image.fromarray(load_rgb(prompt.image)))[None].to(clip.mean.device)
            rows.append(clip.encode_images(image)[0])
    return torch.stack(rows)


__all__ = ["WeightedPrompt", "embed_prompts", "parse_prompt"]
