"""Training the pose-conditioned latent diffusion model from the latent cache.

The module holds the UNet and the pose encoder; the data are cached VQ latents with their poses (the VQ
encoder never runs per step). Options: eps or v prediction, the original (scaled-linear) or a cosine
schedule, min-SNR loss weighting, pose dropout for classifier-free guidance, EMA weights (diffusers'
EMAModel), AdamW (fused on GPU), gradient checkpointing. Exports a pipeline folder with the EMA weights.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.training_utils import EMAModel
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from posedraw.config import dump_yaml, load_config, to_dict
from posedraw.data.latents import CachedLatents, collate_cached
from posedraw.io import atomic_dir, save_image_atomic, write_text_atomic
from posedraw.models.conditioning import LegacyPoseEncoder, PlacedPoseEncoder, PoseConditioning, PoseEncoder
from posedraw.models.unet import UNetConfig, build_unet
from posedraw.models.vq import load_vq
from posedraw.pose import Pose
from posedraw.train.trainer import PoseBatchTransfer, RunOptions, make_trainer, resume_path


@dataclass(frozen=True)
class PoseConfig:
    mode: Literal["tokens", "maps", "tokens+maps", "legacy"] = "tokens+maps"
    map_kind: Literal["heatmaps", "skeleton"] = "heatmaps"
    sigma: float = 1.0
    bands: int = 8
    dropout: float = 0.1  # probability of training a sample with the null pose (for guidance)


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    schedule: Literal["scaled_linear", "squaredcos_cap_v2"] = "scaled_linear"  # the original "linear" is scaled_linear
    prediction: Literal["epsilon", "v_prediction"] = "epsilon"
    min_snr_gamma: float = 0.0  # 0: plain MSE; 5 is the usual min-SNR setting
    scale_factor: float = 0.0  # latents are multiplied by this; 0: 1/std of the cached latents (scale_by_std)


@dataclass(frozen=True)
class LDMTrainConfig:
    batch_size: int = 16
    learning_rate: float = 2.0e-4
    weight_decay: float = 0.01
    max_steps: int = 100_000
    ema_decay: float = 0.999
    sample_every: int = 1000
    checkpoint_every: int = 1000
    sample_steps: int = 20
    num_workers: int = 2
    seed: int = 0


@dataclass(frozen=True)
class LDMRunConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: LDMTrainConfig = field(default_factory=LDMTrainConfig)


def make_pose_encoder(config: LDMRunConfig) -> PoseEncoder:
    """The configured encoder; `legacy` is the original (1, 17) grid-token context (no null pose)."""
    if config.pose.mode == "legacy":
        if config.pose.dropout > 0:
            raise ValueError("pose.dropout: the legacy encoder has no null pose; set it to 0")
        return LegacyPoseEncoder()
    return PlacedPoseEncoder(
        mode=config.pose.mode,
        dim=config.unet.context_dim,
        bands=config.pose.bands,
        latent_size=config.unet.sample_size,
        map_kind=config.pose.map_kind,
        sigma=config.pose.sigma,
        null_pose=config.pose.dropout > 0,
    )


def _schedule(config: DiffusionConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": config.timesteps,
        "beta_start": config.beta_start,
        "beta_end": config.beta_end,
        "beta_schedule": config.schedule,
        "prediction_type": config.prediction,
        "clip_sample": False,
    }


def noise_schedule(config: DiffusionConfig) -> DDPMScheduler:
    return DDPMScheduler(**_schedule(config))


def sampling_scheduler(config: DiffusionConfig) -> DDIMScheduler:
    """The scheduler saved with the model: the training schedule (samplers are chosen per call)."""
    return DDIMScheduler(**_schedule(config), set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")


def snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma loss weights per sample (Hang et al. 2023): min(SNR, gamma) / SNR for eps,
    min(SNR, gamma) / (SNR + 1) for v."""
    alpha = alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alpha / (1 - alpha)
    clipped = snr.clamp(max=gamma)
    return clipped / (snr + 1) if prediction == "v_prediction" else clipped / snr


class LatentDiffusionModule(PoseBatchTransfer, L.LightningModule):
    def __init__(self, config: LDMRunConfig) -> None:
        super().__init__()
        self.config = config
        self.pose_encoder = make_pose_encoder(config)
        unet_config = config.unet if config.pose.mode != "legacy" else replace(config.unet, context_dim=17)
        self.unet = build_unet(unet_config, self.pose_encoder.map_channels)
        self.schedule = noise_schedule(config.diffusion)
        self.ema = EMAModel(list(self.trainable()), decay=config.train.ema_decay)

    def trainable(self):
        yield from self.unet.parameters()
        yield from self.pose_encoder.parameters()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        fused = {"fused": True} if torch.cuda.is_available() else {}
        return torch.optim.AdamW(
            self.trainable(), lr=self.config.train.learning_rate, weight_decay=self.config.train.weight_decay, **fused
        )

    def conditioning(self, poses: list[Pose], drop: torch.Tensor | None = None) -> PoseConditioning:
        prepared = {k: v.to(self.device) for k, v in self.pose_encoder.prepare(poses).items()}
        size = (self.config.unet.sample_size, self.config.unet.sample_size)
        cond = self.pose_encoder(**prepared, latent_size=size)
        if drop is None or not drop.any():
            return cond
        null = self.pose_encoder.null(len(poses), size)
        keep = ~drop
        context = torch.where(keep[:, None, None], cond.context, null.context)
        maps = None if cond.maps is None else torch.where(keep[:, None, None, None], cond.maps, null.maps)
        return PoseConditioning(context, maps)

    def loss(self, latents: torch.Tensor, poses: list[Pose]) -> torch.Tensor:
        config = self.config.diffusion
        latents = latents * config.scale_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, config.timesteps, (latents.shape[0],), device=self.device)
        noisy = self.schedule.add_noise(latents, noise, t)
        drop = torch.rand(latents.shape[0], device=self.device) < self.config.pose.dropout
        cond = self.conditioning(poses, drop)
        x = noisy if cond.maps is None else torch.cat([noisy, cond.maps], dim=1)
        output = self.unet(x, t, encoder_hidden_states=cond.context).sample
        target = noise if config.prediction == "epsilon" else self.schedule.get_velocity(latents, noise, t)
        per_sample = F.mse_loss(output.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if config.min_snr_gamma > 0:
            per_sample = per_sample * snr_weights(
                self.schedule.alphas_cumprod, t, config.min_snr_gamma, config.prediction
            )
        return per_sample.mean()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch["latent"], batch["pose"])
        self.log("loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, *args: Any) -> None:
        self.ema.step(list(self.trainable()))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.ema.load_state_dict(checkpoint["ema"])

    def ema_copies(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """Copies of the UNet and pose encoder carrying the EMA weights."""
        unet, encoder = copy.deepcopy(self.unet), copy.deepcopy(self.pose_encoder)
        params = list(unet.parameters()) + list(encoder.parameters())
        self.ema.copy_to(params)
        return unet.eval(), encoder.eval()


def build_pipeline(module: LatentDiffusionModule, vq_dir: Path, ema: bool = True):
    from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline

    unet, encoder = (
        module.ema_copies() if ema else (copy.deepcopy(module.unet).eval(), copy.deepcopy(module.pose_encoder).eval())
    )
    vq = load_vq(vq_dir)
    vq.register_to_config(scaling_factor=module.config.diffusion.scale_factor)
    pipeline = KeypointLDMPipeline(
        unet=unet.float(), vq=vq, scheduler=sampling_scheduler(module.config.diffusion), pose_encoder=encoder.float()
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class SampleGrid(Callback):
    """Every `every` steps: conditioning pose | EMA sample for fixed validation poses, as one PNG."""

    def __init__(self, poses: list[Pose], vq_dir: Path, folder: Path, every: int, steps: int) -> None:
        self.poses, self.vq_dir, self.folder, self.every, self.steps = poses, vq_dir, folder, every, steps

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if trainer.is_global_zero and trainer.global_step % self.every == 0:
            self.write(module, trainer.global_step)  # type: ignore[arg-type]

    def write(self, module: LatentDiffusionModule, step: int) -> Path:
        from posedraw.pipelines.generate import pose_sample_grid

        pipeline = build_pipeline(module, self.vq_dir).to(module.device)
        images = pipeline(self.poses, seeds=list(range(len(self.poses))), steps=self.steps).images
        path = self.folder / f"samples_{step:07d}.png"
        save_image_atomic(pose_sample_grid(self.poses, images), path)
        return path


def measured_scale(latents: Path, samples: int = 512) -> float:
    """1 / std of the first cached latents: diffusion then sees unit-variance latents (latent-diffusion's
    scale_by_std). The same samples every time, so a resumed run measures the same value."""
    dataset = CachedLatents(latents, "latent", flip=0.0, rank=0, ranks=1)
    values = torch.stack([s["latent"] for _, s in zip(range(samples), dataset)])
    return float(1.0 / values.std().clamp_min(1e-6))


def with_measured_scale(config: LDMRunConfig, latents: Path) -> LDMRunConfig:
    if config.diffusion.scale_factor > 0:
        return config
    return replace(config, diffusion=replace(config.diffusion, scale_factor=round(measured_scale(latents), 5)))


def train_ldm(
    config_path: Path, latents: Path, vq_dir: Path, options: RunOptions, validation: list[Pose] | None = None
) -> Path | None:
    """Train (or resume) a diffusion model on a latent cache; export `<out>/model` (a pipeline folder)."""
    config = with_measured_scale(load_config(LDMRunConfig, config_path), latents)
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    options.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(options.out / "config.yaml", dump_yaml(config))
    dataset = CachedLatents(latents, "latent", seed=config.train.seed)
    loader = DataLoader(
        dataset,
        batch_size=config.train.batch_size,
        num_workers=config.train.num_workers,
        collate_fn=collate_cached,
        drop_last=True,
        persistent_workers=config.train.num_workers > 0,
    )
    if validation is None:
        validation = [s["pose"] for _, s in zip(range(4), CachedLatents(latents, "latent", flip=0.0, rank=0, ranks=1))]
    grid = SampleGrid(validation, vq_dir, options.out / "samples", config.train.sample_every, config.train.sample_steps)
    trainer = make_trainer(options, config.train.max_steps, config.train.checkpoint_every, [grid])
    module = LatentDiffusionModule(config)
    trainer.fit(module, loader, ckpt_path=resume_path(options))
    if not trainer.is_global_zero:
        return None
    model_dir = options.out / "model"
    pipeline = build_pipeline(module, vq_dir)
    with atomic_dir(model_dir) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        info = {"kind": "ldm", "steps": trainer.global_step, "config": to_dict(config)}
        (tmp / "posedraw.json").write_text(json.dumps(info, indent=1) + "\n")
    grid.write(module, trainer.global_step)
    return model_dir
