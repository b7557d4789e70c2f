"""Tuning inputs and outputs as files: what `posedraw tune` reads and writes.

An input is a latent saved by `generate --save-latent` (float .npy, (C, h, w)), a code grid (integer .npy,
(h, w), e.g. from the f16 transformer), or any image file (encoded with the model's VQ). The tuned PNG
keeps the source's `posedraw` metadata (its pose and recipe, when it came from `generate`) and adds the
tuning parameters and CLIP similarities under `posedraw-tune`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import VQModel
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from posedraw.data.images import to_image, to_tensor
from posedraw.errors import PosedrawError
from posedraw.io import atomic_path, load_rgb, save_image_atomic
from posedraw.models.vq import downsampling_factor, encode, latents_from_codes
from posedraw.pipelines.outputs import METADATA_KEY, side_by_side
from posedraw.tuning.clip import TuneOptions, TuneResult
from posedraw.tuning.prompts import WeightedPrompt

TUNE_KEY = "posedraw-tune"


def _latent_from_npy(path: Path, vq: VQModel) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PosedrawError(f"{path}: not a readable .npy array ({exc.__class__.__name__})") from None
    channels = int(vq.config.vq_embed_dim)
    if np.issubdtype(array.dtype, np.integer) and array.ndim == 2:
        if array.min() < 0 or array.max() >= vq.config.num_vq_embeddings:
            raise PosedrawError(f"{path}: code indices must lie in [0, {vq.config.num_vq_embeddings}) for this VQ")
        return latents_from_codes(vq, torch.from_numpy(array)[None]).detach()
    if np.issubdtype(array.dtype, np.floating) and array.ndim == 3 and array.shape[0] == channels:
        if not np.isfinite(array).all():
            raise PosedrawError(f"{path}: expected finite numbers")
        return torch.from_numpy(np.array(array, dtype=np.float32))[None]
    raise PosedrawError(
        f"{path}: expected a latent ({channels}, h, w) float array or an (h, w) integer code grid, "
        f"got {array.dtype} {array.shape}"
    )


def _latent_from_image(path: Path, vq: VQModel) -> torch.Tensor:
    image = Image.fromarray(load_rgb(path))
    factor = downsampling_factor(vq)
    width, height = (max(factor, side // factor * factor) for side in image.size)
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    with torch.no_grad():
        return encode(vq, to_tensor(image)[None].to(vq.device)).float().cpu()


def stem_of(path: Path) -> str:
    """The drawing's name: `x` for x.png, x.latent.npy and x.codes.npy."""
    for suffix in (".latent.npy", ".codes.npy"):
        if path.name.endswith(suffix):
            return path.name.removesuffix(suffix)
    return path.stem


def source_metadata(path: Path) -> dict[str, Any] | None:
    """The `posedraw` metadata of a PNG made by generate (or of the PNG a latent or code grid was saved with)."""
    for candidate in (path, path.with_name(stem_of(path) + ".png")):
        if candidate.suffix.lower() == ".png" and candidate.is_file():
            try:
                with Image.open(candidate) as image:
                    text = image.text.get(METADATA_KEY)  # type: ignore[attr-defined]
                return json.loads(text) if text else None
            except (OSError, ValueError, AttributeError):
                return None
    return None


def load_tune_input(path: Path, vq: VQModel) -> torch.Tensor:
    """The (1, C, h, w) latent to tune for an input file (see the module doc)."""
    if not path.is_file():
        raise PosedrawError(f"{path}: no such file (expected a .latent.npy, a code .npy or an image)")
    if path.suffix.lower() == ".npy":
        return _latent_from_npy(path, vq)
    return _latent_from_image(path, vq)


def tune_record(prompts: list[WeightedPrompt], options: TuneOptions, clip: str, before, after) -> dict[str, Any]:
    rows = [
        {"prompt": p.label, "weight": p.weight, "clip_before": round(float(b), 4), "clip_after": round(float(a), 4)}
        for p, b, a in zip(prompts, before, after)
    ]
    return {"clip": clip, "options": asdict(options), "prompts": rows}


def write_tuned(
    out: Path, stem: str, result: TuneResult, index: int, record: dict[str, Any], source: dict[str, Any] | None
) -> Path:
    """Write <stem>_tuned.png (with metadata), its latent, and <stem>_tune_strip.png when frames were kept."""
    out.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    if source is not None:
        info.add_text(METADATA_KEY, json.dumps(source))
    info.add_text(TUNE_KEY, json.dumps(record))
    path = out / f"{stem}_tuned.png"
    save_image_atomic(to_image(result.images[index]), path, pnginfo=info)
    with atomic_path(out / f"{stem}_tuned.latent.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, result.latents[index].float().cpu().numpy())
    if result.frames:
        strip = side_by_side([to_image(images[index]) for _, images in result.frames])
        save_image_atomic(strip, out / f"{stem}_tune_strip.png")
    return path


def read_tune_record(path: Path) -> dict[str, Any]:
    with Image.open(path) as image:
        text = image.text.get(TUNE_KEY)  # type: ignore[attr-defined]
    if text is None:
        raise PosedrawError(f"{path}: no {TUNE_KEY} metadata (was it made by posedraw tune?)")
    return json.loads(text)


__all__ = [
    "TUNE_KEY",
    "load_tune_input",
    "read_tune_record",
    "source_metadata",
    "stem_of",
    "tune_record",
    "write_tuned",
]
