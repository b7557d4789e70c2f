"""PatchGAN discriminator: a stack of strided 4x4 convolutions that scores overlapping image patches.

As in pix2pix and the original VQGAN: `layers` stride-2 stages that double the width (batch-normed after
the first), one stride-1 stage, and a 1-channel output map of patch logits. Batch norm uses the batch's
statistics in training, as the original's does; it keeps no running averages (see `_stage`).
"""

from __future__ import annotations

import torch
from torch import nn


def _stage(cin: int, cout: int, stride: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride, 1, bias=not norm)]
    if norm:
        # batch statistics only: the discriminator never runs in eval mode, so running averages would be
        # dead state, and state that differs between DDP ranks (each sees its own batches)
        layers.append(nn.BatchNorm2d(cout, track_running_stats=False))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        widths = [channels * min(2**i, 8) for i in range(layers + 1)]
        modules = _stage(in_channels, widths[0], 2, norm=False)
        for i in range(1, layers):
            modules += _stage(widths[i - 1], widths[i], 2, norm=True)
        modules += _stage(widths[layers - 1], widths[layers], 1, norm=True)
        modules.append(nn.Conv2d(widths[layers], 1, 4, 1, 1))
        self.main = nn.Sequential(*modules)
        self.apply(_init)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images)


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
