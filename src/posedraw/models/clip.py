"""CLIP from open_clip: a named model with pretrained weights (downloaded when online), a local checkpoint
file, or a tiny untrained model for tests.

The tokenizer of the OpenAI-style models ships inside the open_clip package, so text encoding works
offline; only the weights may need a download, and a failed download is an error that says how to give
a local file instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from posedraw.errors import CheckpointError

TINY = "posedraw-tiny-clip"  # an untrained toy CLIP shipped as a config, for tests and CPU demos
_CONFIGS = Path(__file__).parent / "clip_configs"


@dataclass(frozen=True)
class ClipSpec:
    model: str = "ViT-B-32"
    pretrained: str | None = "openai"  # an open_clip tag (e.g. openai, laion2b_s34b_b79k), None for random
    weights: str | None = None  # a local checkpoint file; wins over `pretrained`


class Clip(torch.nn.Module):
    """Image and text embeddings (unit length) from an open_clip model; images in [-1, 1] of any size."""

    def __init__(self, model: torch.nn.Module, tokenizer, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model, self.tokenizer = model.eval(), tokenizer
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        size = model.visual.image_size
        self.image_size = size if isinstance(size, int) else int(size[0])

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.clamp(-1, 1) + 1) / 2
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        return F.normalize(self.model.encode_image((x - self.mean) / self.std), dim=-1)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.mean.device)
        return F.normalize(self.model.encode_text(tokens), dim=-1)


def load_clip(spec: ClipSpec, device: str | torch.device = "cpu") -> Clip:
    import open_clip

    open_clip.add_model_config(_CONFIGS)
    if spec.model not in open_clip.list_models():
        raise CheckpointError(f"--clip {spec.model!r}: not an open_clip model name (e.g. ViT-B-32, or {TINY})")
    if spec.weights is not None and not Path(spec.weights).is_file():
        raise CheckpointError(f"{spec.weights}: no such CLIP checkpoint file")
    pretrained = spec.weights or (None if spec.model == TINY else spec.pretrained)
    try:
        # the tiny model's random weights are the same on every run; the caller's random stream is untouched
        with torch.random.fork_rng(devices=[]), _quiet_root_logger(pretrained is None):
            torch.manual_seed(0)
            model, _, preprocess = open_clip.create_model_and_transforms(spec.model, pretrained=pretrained)
    except (RuntimeError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"CLIP {spec.model} ({pretrained}): weights could not be loaded ({exc.__class__.__name__}); "
            "offline, download them elsewhere and pass the file with --clip-weights PATH"
        ) from None
    normalize = next(t for t in preprocess.transforms if t.__class__.__name__ == "Normalize")
    clip = Clip(model, open_clip.get_tokenizer(spec.model), tuple(normalize.mean), tuple(normalize.std))
    for p in clip.parameters():
        p.requires_grad_(False)
    return clip.to(device)


@contextlib.contextmanager
def _quiet_root_logger(quiet: bool) -> Iterator[None]:
    """open_clip warns on the root logger when a model gets random weights; for the tiny test model and
    `pretrained=None` that is what was asked for."""
    root = logging.getLogger()
    level = root.level
    if quiet:
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@lru_cache(maxsize=2)
def cached_clip(spec: ClipSpec) -> Clip:
    """One CLIP per process (data-building workers each load theirs once)."""
    return load_clip(spec)
