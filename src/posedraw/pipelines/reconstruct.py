"""Reconstruct images through a VQ first stage and measure how close they come back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import VQModel
from PIL import Image

from posedraw.data.images import resize_and_crop, to_image, to_tensor
from posedraw.io import atomic_path, load_rgb, save_image_atomic
from posedraw.losses.perceptual import TORCHVISION_CACHE, build_lpips, vgg16_cache_path
from posedraw.models.vq import decode, encode, quantize


@dataclass(frozen=True)
class Reconstruction:
    source: Path
    output: Path
    psnr: float
    lpips: float | None


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1], computed on the 0..255 scale after clamping."""
    a255, b255 = (a.clamp(-1, 1) + 1) * 127.5, (b.clamp(-1, 1) + 1) * 127.5
    mse = float(((a255 - b255) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def lpips_if_available() -> torch.nn.Module | None:
    """LPIPS with real VGG16 weights if they are in the torch cache; None otherwise (never untrained)."""
    return build_lpips(TORCHVISION_CACHE) if vgg16_cache_path().is_file() else None


def _save_npy(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


@torch.no_grad()
def reconstruct_images(
    vq: VQModel,
    images: list[Path],
    out: Path,
    size: int,
    save_latent: bool = False,
    save_codes: bool = False,
    metric: torch.nn.Module | None = None,
) -> list[Reconstruction]:
    """Encode, quantize and decode each image at `size`; write `<stem>.png` (+ .latent.npy / .codes.npy)."""
    device = next(vq.parameters()).device
    results = []
    for path in images:
        x = to_tensor(resize_and_crop(Image.fromarray(load_rgb(path)), size))[None].to(device)
        latents = encode(vq, x)
        recon = decode(vq, latents)
        output = out / f"{path.stem}.png"
        save_image_atomic(to_image(recon[0]), output)
        if save_latent:
            _save_npy(latents[0].float().cpu().numpy(), out / f"{path.stem}.latent.npy")
        if save_codes:
            _save_npy(quantize(vq, latents)[1][0].cpu().numpy(), out / f"{path.stem}.codes.npy")
        distance = None if metric is None else float(metric.to(device)(x, recon.clamp(-1, 1)).mean())
        results.append(Reconstruction(path, output, psnr(x, recon), distance))
    return results
