"""Random cutouts of an image for CLIP: crops of random size and place, warped and jittered (kornia).

CLIP scores many augmented views instead of the one image, so the latent cannot satisfy CLIP with an
adversarial pixel pattern that only works for one exact framing (the VQGAN+CLIP recipe). Every
augmentation is differentiable, so the gradient reaches the latent through all of them.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch


class Cutouts(torch.nn.Module):
    """`count` augmented square views (size x size) of each image; images and views in [-1, 1]."""

    def __init__(self, count: int, size: int, min_scale: float = 0.25) -> None:
        super().__init__()
        self.count = count
        self.augment = K.AugmentationSequential(
            K.RandomResizedCrop((size, size), scale=(min_scale, 1.0), ratio=(0.8, 1.25)),
            K.RandomAffine(degrees=10.0, translate=(0.05, 0.05), padding_mode="border", p=0.5),
            K.RandomPerspective(distortion_scale=0.2, p=0.3),
            K.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.02, p=0.5),
            K.RandomGaussianNoise(std=0.02, p=0.5),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B * count, 3, size, size), the views of image b at rows b*count ... b*count+count-1."""
        views = self.augment(((images + 1) / 2).repeat_interleave(self.count, dim=0))
        return views.clamp(0, 1) * 2 - 1


__all__ = ["Cutouts"]
