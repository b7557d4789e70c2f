"""Structure terms: how far a tuned image has moved from the drawing it started as.

CLIP guidance happily redraws a figure; the pose is kept by penalising changes to the image's layout
while leaving colour and texture free. Three measures (`posedraw tune --structure`):
- `lowpass`: MSE between Gaussian-blurred images: the coarse layout (where the body is), not detail;
- `edges`: MSE between Sobel edge maps of the grey images: outlines and limbs, not colour;
- `lpips`: LPIPS distance (needs the VGG16 ImageNet weights, see `posedraw.losses.perceptual`).
"""

from __future__ import annotations

from collections.abc import Callable

import kornia
import torch

STRUCTURES = ("lowpass", "edges", "lpips", "none")


def _blur(images: torch.Tensor) -> torch.Tensor:
    sigma = max(1.0, images.shape[-1] / 64)  # about the same share of the image at every size
    kernel = 2 * round(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(images, (kernel, kernel), (sigma, sigma))


def _edges(images: torch.Tensor) -> torch.Tensor:
    return kornia.filters.sobel(kornia.color.rgb_to_grayscale((images + 1) / 2))


def structure_distance(kind: str, initial: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function image -> per-image distance (B,) to `initial` under the measure `kind`."""
    if kind == "lowpass":
        target = _blur(initial)
        return lambda images: (_blur(images) - target).pow(2).flatten(1).mean(1)
    if kind == "edges":
        target = _edges(initial)
        return lambda images: (_edges(images) - target).pow(2).flatten(1).mean(1)
    if kind == "lpips":
        from posedraw.losses.perceptual import build_lpips

        metric = build_lpips().to(initial.device)
        return lambda images: metric(images, initial).flatten()
    if kind == "none":
        return lambda images: images.new_zeros(images.shape[0])
    raise ValueError(f"--structure: expected one of {', '.join(STRUCTURES)}, got {kind!r}")


__all__ = ["STRUCTURES", "structure_distance"]
