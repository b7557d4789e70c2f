"""The diffusion LightningModule: the research code only (the loss, its optimizer and the EMA step).

The module holds the UNet and the pose encoder (and the text encoder when the model learns text); the data
are cached VQ latents with their poses, so the VQ encoder never runs per step. Options: eps or v prediction,
min-SNR loss weighting, pose dropout for classifier-free guidance, EMA weights, AdamW (fused on GPU). Pose
dropout and text dropout are drawn independently, so every pair of (pose or null, text or none) that
two-condition guidance asks for is trained.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from posedraw.data.device_cache import BatchPoses, prepared_poses
from posedraw.devices import optimizer_options
from posedraw.models.compile import compile_unet
from posedraw.models.conditioning import PoseConditioning
from posedraw.models.diffusion_math import snr_weights
from posedraw.models.person_text import person_vectors, training_texts
from posedraw.models.text import TextEncoder, training_prompts
from posedraw.models.unet import build_unet, denoise
from posedraw.train.driver import PoseBatchTransfer
from posedraw.train.ema import averaged_copy, update_ema
from posedraw.train.ldm.config import LDMRunConfig, noise_schedule
from posedraw.train.ldm.networks import make_pose_encoder


class LatentDiffusionModule(PoseBatchTransfer, L.LightningModule):
    def __init__(self, config: LDMRunConfig, text_encoder: TextEncoder | None = None, compile: bool = False) -> None:
        """`compile`: the UNet through torch.compile once training starts on its device (models/compile.py;
        off by default, docs/speed.md); checkpoints and exported copies are the plain network."""
        super().__init__()
        self.config, self.compile_on_fit = config, compile
        self.pose_encoder = make_pose_encoder(config)
        self.text_encoder = text_encoder
        unet_config = config.unet if config.pose.mode != "legacy" else replace(config.unet, context_dim=17)
        pooled = unet_config.context_dim if text_encoder is not None and config.text.pooled else 0
        self.unet = build_unet(unet_config, self.pose_encoder.map_channels, pooled)
        self.schedule = noise_schedule(config.diffusion)
        self.ema = averaged_copy(self.networks(), config.train.ema_decay)

    def on_fit_start(self) -> None:
        if self.compile_on_fit:
            compile_unet(self.unet, self.device)

    def networks(self) -> dict[str, torch.nn.Module]:
        """The trained networks by name (the EMA holds a copy of each)."""
        networks = {"unet": self.unet, "pose_encoder": self.pose_encoder}
        return networks if self.text_encoder is None else {**networks, "text_encoder": self.text_encoder}

    def trainable(self) -> Iterator[torch.nn.Parameter]:
        for network in self.networks().values():
            yield from network.parameters()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW; the per-person binding's projections at `train.binding_lr_scale` times the learning rate: a
        fine-tune adds them at zero (or small) to a trained model, whose own weights must move slowly."""
        train = self.config.train
        binding = {id(p) for n, p in self.pose_encoder.named_parameters() if n.startswith("binding.")}
        groups = [{"params": [p for p in self.trainable() if id(p) not in binding]}]
        if binding:
            scaled = [p for p in self.trainable() if id(p) in binding]
            groups.append({"params": scaled, "lr": train.learning_rate * train.binding_lr_scale})
        return torch.optim.AdamW(
            groups, lr=train.learning_rate, weight_decay=train.weight_decay, **optimizer_options(self.device)
        )

    def conditioning(
        self, poses: BatchPoses, drop: torch.Tensor | None = None, tags: list[list[str]] | None = None
    ) -> PoseConditioning:
        """The poses' conditioning (Pose objects, or tensors the device cache prepared), the samples `drop`ped
        with the null pose, and (with a text encoder) the tokens of `tags` after the pose's and each
        person's prompt bound to its person (`training_text` draws which text a sample sees)."""
        prepared = prepared_poses(self.pose_encoder.prepare, poses, self.device)
        slot_prompts = prepared.pop("person_prompts", None)
        batch = len(next(iter(prepared.values())))
        bags, people = self.training_text(tags or [[] for _ in range(batch)], slot_prompts)
        if people is not None:
            prepared["person_text"] = person_vectors(self.text_encoder, people)
        size = (self.config.unet.sample_size, self.config.unet.sample_size)
        cond = self.pose_encoder(**prepared, latent_size=size)
        if drop is not None:
            # the null pose takes part in every batch (a sample without dropout keeps its pose), so its
            # parameters always get a gradient, as DDP requires
            null, keep = self.pose_encoder.null(len(drop), size), ~drop
            context = torch.where(keep[:, None, None], cond.context, null.context)
            maps = None if cond.maps is None else torch.where(keep[:, None, None, None], cond.maps, null.maps)
            cond = PoseConditioning(context, maps)
        if bags is None:
            return cond
        tokens = self.text_encoder(**self.text_encoder.prepare(bags))
        return cond.with_text(tokens, pooled=self.config.text.pooled)

    def training_text(
        self, tags: list[list[str]], slot_prompts: list[list[str]] | None
    ) -> tuple[list[list[str]] | None, list[list[str]] | None]:
        """The batch's whole-picture prompts and per-person prompts (None where the model takes none). Each
        tag is dropped with `text.tag_dropout`, the whole text with `text.dropout` (drawn apart from the
        pose dropout); per-person prompts replace the bag for `text.person_share` of the samples."""
        text = self.config.text
        if self.text_encoder is None:
            return None, None
        if slot_prompts is None:
            return training_prompts(tags, text.tag_dropout, text.dropout), None
        return training_texts(tags, slot_prompts, text.person_share, text.tag_dropout, text.dropout)

    def loss(self, latents: torch.Tensor, poses: BatchPoses, tags: list[list[str]] | None = None) -> torch.Tensor:
        config = self.config.diffusion
        latents = latents * config.scale_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, config.timesteps, (latents.shape[0],), device=self.device)
        noisy = self.schedule.add_noise(latents, noise, t)
        drop = None
        if self.pose_encoder.has_null:
            drop = torch.rand(latents.shape[0], device=self.device) < self.config.pose.dropout
        cond = self.conditioning(poses, drop, tags)
        output = denoise(self.unet, noisy, t, cond)
        target = noise if config.prediction == "epsilon" else self.schedule.get_velocity(latents, noise, t)
        per_sample = F.mse_loss(output.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if config.min_snr_gamma > 0:
            per_sample = per_sample * snr_weights(
                self.schedule.alphas_cumprod, t, config.min_snr_gamma, config.prediction
            )
        return per_sample.mean()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch["latent"], batch["pose"], batch.get("tags"))
        self.log("loss", loss)  # not prog_bar: Lightning reads those to the host every step
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The EMA moves right after the weights, inside the step: checkpoints written at the step's end
        (by the driver's callbacks, which run before the module's own batch-end hook) hold both."""
        super().optimizer_step(*args, **kwargs)
        update_ema(self.ema, self.networks())

    def network_copies(self, ema: bool = True) -> dict[str, torch.nn.Module]:
        """Float copies of the trained networks, carrying the EMA weights (or the live ones)."""
        networks = self.ema.module if ema else self.networks()
        return {name: copy.deepcopy(network).float().eval() for name, network in networks.items()}
