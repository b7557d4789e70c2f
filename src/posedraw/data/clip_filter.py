"""The optional CLIP text filter of dataset builds: keep images that CLIP finds closer to the wanted prompts
than to the unwanted ones.

score = max cosine similarity to a wanted prompt - max cosine similarity to an unwanted prompt (0 when
there is none); an image is skipped when its score is below the threshold. Scores of kept images go into
the manifest, so a threshold can be chosen by looking at them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch
from PIL import Image

from posedraw.data.images import to_tensor
from posedraw.models.clip import ClipSpec, cached_clip


@dataclass(frozen=True)
class ClipFilter:
    wanted: tuple[str, ...]
    unwanted: tuple[str, ...] = ()
    threshold: float = 0.0
    spec: ClipSpec = field(default_factory=ClipSpec)

    def score(self, image: Image.Image) -> float:
        clip = cached_clip(self.spec)
        with torch.no_grad():
            embedding = clip.encode_images(to_tensor(image)[None])[0]
            score = float((_texts(self.spec, self.wanted) @ embedding).max())
            if self.unwanted:
                score -= float((_texts(self.spec, self.unwanted) @ embedding).max())
        return score


@lru_cache(maxsize=8)
def _texts(spec: ClipSpec, texts: tuple[str, ...]) -> torch.Tensor:
    with torch.no_grad():
        return cached_clip(spec).encode_texts(list(texts))
