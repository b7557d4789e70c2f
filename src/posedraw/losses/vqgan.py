"""The VQGAN objective: L1 + LPIPS reconstruction, codebook loss, and a PatchGAN adversarial term.

The generator's adversarial weight is adapted each step so that the adversarial gradient at the last
decoder layer has the size of the reconstruction gradient there (times `disc_weight`), which keeps the
GAN term from swamping or vanishing against the reconstruction. The discriminator starts at `disc_start`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from posedraw.losses.discriminator import PatchDiscriminator
from posedraw.losses.perceptual import build_lpips


@dataclass(frozen=True)
class VQLossConfig:
    perceptual_weight: float = 1.0
    perceptual_backbone: str = "torchvision"  # 'torchvision' (torch hub cache), a file path, or 'untrained'
    codebook_weight: float = 1.0
    disc_weight: float = 0.75
    disc_start: int = 10000
    disc_loss: Literal["hinge", "vanilla"] = "hinge"
    disc_layers: int = 3
    disc_channels: int = 64


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def vanilla_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """|grad rec| / |grad g| at the last layer, clamped to [0, 1e4] and detached."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()


class VQGANLoss(nn.Module):
    def __init__(self, config: VQLossConfig, in_channels: int = 3) -> None:
        super().__init__()
        self.config = config
        self.perceptual = build_lpips(config.perceptual_backbone) if config.perceptual_weight > 0 else None
        self.discriminator = PatchDiscriminator(in_channels, config.disc_channels, config.disc_layers)
        self.d_loss = hinge_d_loss if config.disc_loss == "hinge" else vanilla_d_loss

    def disc_active(self, step: int) -> bool:
        return step >= self.config.disc_start

    def reconstruction(self, images: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Per-pixel L1 plus weighted LPIPS, averaged."""
        loss = (images - recon).abs().mean()
        if self.perceptual is not None:
            loss = loss + self.config.perceptual_weight * self.perceptual(images, recon).mean()
        return loss

    def generator_loss(
        self,
        images: torch.Tensor,
        recon: torch.Tensor,
        codebook_loss: torch.Tensor,
        step: int,
        last_layer: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rec = self.reconstruction(images, recon)
        loss = rec + self.config.codebook_weight * codebook_loss.mean()
        logs = {"rec_loss": rec.detach(), "codebook_loss": codebook_loss.detach().mean()}
        if self.disc_active(step) and self.config.disc_weight > 0:
            g_loss = -self.discriminator(recon).mean()
            weight = self.config.disc_weight * adaptive_weight(rec, g_loss, last_layer)
            loss = loss + weight * g_loss
            logs.update(g_loss=g_loss.detach(), d_weight=weight)
        logs["loss"] = loss.detach()
        return loss, logs

    def discriminator_loss(
        self, images: torch.Tensor, recon: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real, fake = self.discriminator(images.detach()), self.discriminator(recon.detach())
        loss = self.d_loss(real, fake)
        return loss, {"d_loss": loss.detach(), "logits_real": real.detach().mean(), "logits_fake": fake.detach().mean()}
