"""CLIP-guided tuning: optimize a drawing's VQ latent so that CLIP matches the prompts, keeping the pose.

The variable is the continuous pre-quantization latent z (B, C, h, w) of a VQ model (f4, f8 or f16).
Each step quantizes z to its nearest codebook vectors with a straight-through gradient (the VQ's own
quantizer), decodes, scores random cutouts with CLIP against every prompt (weighted spherical distance),
adds an anchor to the initial latent whose weight falls linearly to 0 and a structure term that keeps
the layout, takes an Adam step, and clamps z to the codebook's per-channel range so it never leaves the
region the decoder was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from diffusers import VQModel

from posedraw.devices import inference_autocast
from posedraw.errors import PosedrawError
from posedraw.models.clip import Clip
from posedraw.models.vq import codebook_range, decode, quantize
from posedraw.progress import progress as work_progress
from posedraw.tuning.cutouts import Cutouts
from posedraw.tuning.structure import STRUCTURES, structure_distance


@dataclass(frozen=True)
class TuneOptions:
    steps: int = 100
    lr: float = 0.1
    cutouts: int = 32
    seed: int = 0
    anchor: float = 1.0  # weight of MSE(z, z0) at step 0, falling linearly to 0 at the last step
    keep_pose: float = 10.0  # weight of the structure term: keeps toy poses, CLIP still moves (bench/results/tune.json)
    structure: str = "lowpass"  # see posedraw.tuning.structure
    every: int | None = None  # keep the image of every K-th step (a strip)

    def check(self) -> None:
        if self.steps < 1 or self.cutouts < 1 or self.lr <= 0:
            raise PosedrawError("tune: --steps and --cutouts must be >= 1 and --lr > 0")
        if self.structure not in STRUCTURES:
            raise PosedrawError(f"--structure: expected one of {', '.join(STRUCTURES)}, got {self.structure!r}")
        if self.anchor < 0 or self.keep_pose < 0:
            raise PosedrawError("tune: --anchor and --keep-pose must be >= 0")


@dataclass
class TuneResult:
    images: torch.Tensor  # (B, 3, H, W) in [-1, 1], decoded from the tuned latent
    latents: torch.Tensor  # (B, C, h, w) tuned pre-quantization latents
    codes: torch.Tensor  # (B, h, w) their codebook indices
    clip_losses: list[float] = field(default_factory=list)  # weighted prompt distance per step (batch mean)
    frames: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, images) every K steps


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance (up to a factor 2) between unit vectors, broadcast over rows."""
    return (a - b).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2)


@torch.no_grad()
def similarities(clip: Clip, images: torch.Tensor, prompt_embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (B, P) of each whole image to each prompt."""
    return clip.encode_images(images.float()) @ prompt_embeddings.T


def _prompt_loss(clip: Clip, views: torch.Tensor, embeddings: torch.Tensor, weights: torch.Tensor, batch: int):
    """Per-image weighted distance (B,): the mean over an image's cutouts, summed over prompts."""
    embedded = clip.encode_images(views).float()
    distance = spherical_distance(embedded[:, None, :], embeddings[None, :, :])  # (B * n, P)
    return (distance.view(batch, -1, embeddings.shape[0]).mean(1) * weights).sum(1)


def tune(
    vq: VQModel,
    clip: Clip,
    latents: torch.Tensor,
    prompt_embeddings: torch.Tensor,
    weights: torch.Tensor,
    options: TuneOptions = TuneOptions(),
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> TuneResult:
    """Tune `latents` (B, C, h, w) towards the prompts (P, D) with `weights` (P,); see the module doc.

    The VQ's and CLIP's weights are frozen (requires_grad off): only the latent is optimized."""
    options.check()
    vq.requires_grad_(False)
    clip.requires_grad_(False)
    device = latents.device
    low, high = (v.view(1, -1, 1, 1).to(device) for v in codebook_range(vq))
    z0 = latents.detach().float().clamp(low, high)
    weights = weights.to(device, torch.float32)
    embeddings = prompt_embeddings.to(device, torch.float32)
    cutouts = Cutouts(options.cutouts, clip.image_size)
    with torch.no_grad():
        initial = decode(vq, z0).float()
    keep = structure_distance(options.structure, initial)
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=options.lr)
    result = TuneResult(initial, z0, quantize(vq, z0)[1])
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        work_progress("tuning", options.steps, progress) as advance,
    ):
        torch.manual_seed(options.seed)
        for step in range(options.steps):
            with inference_autocast(device):
                images = decode(vq, z).float()
                clip_loss = _prompt_loss(clip, cutouts(images), embeddings, weights, z.shape[0])
            anchor = options.anchor * (1 - step / options.steps) * (z - z0).pow(2).flatten(1).mean(1)
            loss = (clip_loss + anchor + options.keep_pose * keep(images)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                z.copy_(torch.maximum(torch.minimum(z, high), low))
            result.clip_losses.append(float(clip_loss.detach().mean()))
            if options.every and step % options.every == 0:
                result.frames.append((step, images.detach()))
            if on_step is not None:
                on_step(step, result.clip_losses[-1])
            advance(1)
    with torch.no_grad():
        result.latents = z.detach()
        result.codes = quantize(vq, result.latents)[1]
        result.images = decode(vq, result.latents).float()
    if options.every:
        result.frames.append((options.steps, result.images))
    return result


__all__ = ["TuneOptions", "TuneResult", "similarities", "spherical_distance", "tune"]
