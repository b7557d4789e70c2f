"""Training the pose-conditioned latent diffusion model from the latent cache.

The module holds the UNet and the pose encoder; the data are cached VQ latents with their poses (the VQ
encoder never runs per step). Options: eps or v prediction, the original (scaled-linear) or a cosine
schedule, min-SNR loss weighting, pose dropout for classifier-free guidance, EMA weights (`train.ema`), AdamW
(fused on GPU), gradient checkpointing. With `text.kind` (`tags` or `clip-text`) the model also learns each
sample's tags: pose dropout and text dropout are drawn independently, so every pair of (pose or null,
text or none) that two-condition guidance asks for is trained. Exports a pipeline folder with the EMA
weights.
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
from lightning.pytorch.callbacks import Callback

from posedraw.config import load_config, to_dict
from posedraw.data.latents import cache_stream, cache_tags, collate_cached, read_cache
from posedraw.devices import optimizer_options
from posedraw.io import atomic_dir, save_image_atomic
from posedraw.models.conditioning import LegacyPoseEncoder, PlacedPoseEncoder, PoseConditioning, PoseEncoder
from posedraw.models.text import (
    ClipTextEncoder,
    TagEncoder,
    TextEncoder,
    clip_text_dim,
    tag_slots,
    tag_vocabulary,
    training_prompts,
)
from posedraw.models.unet import UNetConfig, build_unet
from posedraw.models.vq import load_vq
from posedraw.pose import Pose
from posedraw.train.driver import PoseBatchTransfer, RunOptions, Stage, run_stage
from posedraw.train.ema import averaged_copy, update_ema


@dataclass(frozen=True)
class PoseConfig:
    mode: Literal["tokens", "maps", "tokens+maps", "legacy"] = "tokens+maps"
    map_kind: Literal["heatmaps", "skeleton"] = "heatmaps"
    sigma: float = 1.0
    bands: int = 8
    dropout: float = 0.1  # probability of training a sample with the null pose (for guidance)
    max_people: int = 1  # people one pose may hold (token groups; the maps hold everyone)


@dataclass(frozen=True)
class TextConfig:
    kind: Literal["none", "tags", "clip-text"] = "none"
    min_count: int = 5  # tags: a tag seen fewer times in the training data is not in the vocabulary
    max_tags: int = 0  # tags: tokens per prompt; 0: the most known tags of one training sample
    tag_dropout: float = 0.1  # tags: each tag of a training prompt dropped with this probability
    dropout: float = 0.1  # the whole prompt dropped (no text), drawn independently of the pose dropout
    pooled: bool = False  # also add the prompt's mean token to the UNet's timestep embedding
    clip_model: str = "ViT-B-32"  # clip-text: the open_clip model and its weights (as for tuning)
    clip_pretrained: str | None = "openai"
    clip_weights: str | None = None


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
    text: TextConfig = field(default_factory=TextConfig)
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
        max_people=config.pose.max_people,
    )


def make_text_encoder(config: LDMRunConfig, tag_lists: list[list[str]]) -> TextEncoder | None:
    """The configured text encoder (None for `text.kind: none`); a tag vocabulary from `tag_lists`."""
    text, dim = config.text, config.unet.context_dim
    if text.kind == "none":
        return None
    if text.kind == "clip-text":
        width = clip_text_dim(text.clip_model, text.clip_pretrained, text.clip_weights)
        return ClipTextEncoder(text.clip_model, text.clip_pretrained, text.clip_weights, dim=dim, clip_dim=width)
    vocabulary = tag_vocabulary(tag_lists, text.min_count)
    if not vocabulary:
        raise ValueError(f"text.kind tags: no tag of the training data is seen {text.min_count} times (text.min_count)")
    return TagEncoder(vocabulary, dim=dim, max_tags=tag_slots(tag_lists, vocabulary, text.max_tags))


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
    def __init__(self, config: LDMRunConfig, text_encoder: TextEncoder | None = None) -> None:
        super().__init__()
        self.config = config
        self.pose_encoder = make_pose_encoder(config)
        self.text_encoder = text_encoder
        unet_config = config.unet if config.pose.mode != "legacy" else replace(config.unet, context_dim=17)
        pooled = unet_config.context_dim if text_encoder is not None and config.text.pooled else 0
        self.unet = build_unet(unet_config, self.pose_encoder.map_channels, pooled)
        self.schedule = noise_schedule(config.diffusion)
        self.ema = averaged_copy(self.networks(), config.train.ema_decay)

    def networks(self) -> dict[str, torch.nn.Module]:
        """The trained networks by name (the EMA holds a copy of each)."""
        networks = {"unet": self.unet, "pose_encoder": self.pose_encoder}
        return networks if self.text_encoder is None else {**networks, "text_encoder": self.text_encoder}

    def trainable(self):
        for network in self.networks().values():
            yield from network.parameters()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        train = self.config.train
        return torch.optim.AdamW(
            self.trainable(), lr=train.learning_rate, weight_decay=train.weight_decay, **optimizer_options(self.device)
        )

    def conditioning(self, poses: list[Pose], drop: torch.Tensor | None = None) -> PoseConditioning:
        prepared = {k: v.to(self.device) for k, v in self.pose_encoder.prepare(poses).items()}
        size = (self.config.unet.sample_size, self.config.unet.sample_size)
        cond = self.pose_encoder(**prepared, latent_size=size)
        if drop is None:
            return cond
        # the null pose takes part in every batch (a sample without dropout keeps its pose), so its
        # parameters always get a gradient, as DDP requires
        null = self.pose_encoder.null(len(poses), size)
        keep = ~drop
        context = torch.where(keep[:, None, None], cond.context, null.context)
        maps = None if cond.maps is None else torch.where(keep[:, None, None, None], cond.maps, null.maps)
        return PoseConditioning(context, maps)

    def with_text(self, cond: PoseConditioning, tags: list[list[str]]) -> PoseConditioning:
        """The pose conditioning with the text tokens of `tags` after the pose tokens. Each tag is dropped
        with `text.tag_dropout`, the whole prompt with `text.dropout` (drawn apart from the pose dropout)."""
        if self.text_encoder is None:
            return cond
        prompts = training_prompts(tags, self.config.text.tag_dropout, self.config.text.dropout)
        tokens = self.text_encoder(**self.text_encoder.prepare(prompts))
        return cond.with_text(tokens, pooled=self.config.text.pooled)

    def loss(self, latents: torch.Tensor, poses: list[Pose], tags: list[list[str]] | None = None) -> torch.Tensor:
        config = self.config.diffusion
        latents = latents * config.scale_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, config.timesteps, (latents.shape[0],), device=self.device)
        noisy = self.schedule.add_noise(latents, noise, t)
        drop = None
        if self.pose_encoder.has_null:
            drop = torch.rand(latents.shape[0], device=self.device) < self.config.pose.dropout
        cond = self.with_text(self.conditioning(poses, drop), tags or [[] for _ in poses])
        x = noisy if cond.maps is None else torch.cat([noisy, cond.maps], dim=1)
        output = self.unet(x, t, encoder_hidden_states=cond.context, class_labels=cond.pooled).sample
        target = noise if config.prediction == "epsilon" else self.schedule.get_velocity(latents, noise, t)
        per_sample = F.mse_loss(output.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if config.min_snr_gamma > 0:
            per_sample = per_sample * snr_weights(
                self.schedule.alphas_cumprod, t, config.min_snr_gamma, config.prediction
            )
        return per_sample.mean()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch["latent"], batch["pose"], batch.get("tags"))
        self.log("loss", loss, prog_bar=True)
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


def build_pipeline(module: LatentDiffusionModule, vq: torch.nn.Module, ema: bool = True):
    """A sampling pipeline of the module's networks (copies, EMA weights by default) with `vq`."""
    from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline

    networks = module.network_copies(ema)
    vq.register_to_config(scaling_factor=module.config.diffusion.scale_factor)
    pipeline = KeypointLDMPipeline(
        unet=networks["unet"], vq=vq, scheduler=sampling_scheduler(module.config.diffusion),
        pose_encoder=networks["pose_encoder"], text_encoder=networks.get("text_encoder"),
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class SampleGrid(Callback):
    """Every `every` steps: conditioning pose | EMA sample for fixed validation poses, as one PNG."""

    def __init__(self, poses: list[Pose], vq: torch.nn.Module, folder: Path, every: int, steps: int) -> None:
        self.poses, self.vq, self.folder, self.every, self.steps = poses, vq, folder, every, steps

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if trainer.is_global_zero and trainer.global_step % self.every == 0:
            self.write(module, trainer.global_step)  # type: ignore[arg-type]

    def write(self, module: LatentDiffusionModule, step: int) -> Path:
        from posedraw.pipelines.generate import pose_sample_grid

        pipeline = build_pipeline(module, self.vq).to(module.device)
        images = pipeline(self.poses, seeds=list(range(len(self.poses))), steps=self.steps).images
        path = self.folder / f"samples_{step:07d}.png"
        save_image_atomic(pose_sample_grid(self.poses, images), path)
        return path


def measured_scale(latents: Path, samples: int = 512) -> float:
    """1 / std of the first cached latents: diffusion then sees unit-variance latents (latent-diffusion's
    scale_by_std). The same samples every time, so a resumed run measures the same value."""
    values = torch.stack([s["latent"] for s in read_cache(latents, "latent", limit=samples)])
    return float(1.0 / values.std().clamp_min(1e-6))


def with_measured_scale(config: LDMRunConfig, latents: Path) -> LDMRunConfig:
    if config.diffusion.scale_factor > 0:
        return config
    return replace(config, diffusion=replace(config.diffusion, scale_factor=round(measured_scale(latents), 5)))


def start_from(module: LatentDiffusionModule, init: str | Path) -> None:
    """Fine-tuning: the UNet and pose encoder (and their EMA) start as those of the diffusion model `init`,
    and so does the text encoder when `init` has one of the same shape (a new one starts fresh). A pooled
    text path the model does not have starts at zero (`build_unet`). Refuses a model of another shape."""
    from posedraw.errors import CheckpointError
    from posedraw.pipelines.loading import load_pipeline

    pipeline = load_pipeline(init)
    for name in ("unet", "pose_encoder", "text_encoder"):
        source, target = getattr(pipeline, name, None), getattr(module, name)
        if source is None and name != "text_encoder":
            raise CheckpointError(f"--init {init}: not a diffusion model (it has no {name})")
        if source is None or target is None:
            continue
        try:
            missing, unexpected = target.load_state_dict(source.state_dict(), strict=False)
        except RuntimeError:
            missing, unexpected = ["(shapes)"], []
        if unexpected or any(not key.startswith("class_embedding.") for key in missing):
            if name == "text_encoder":  # another vocabulary: learned afresh
                continue
            raise CheckpointError(f"--init {init}: its {name} has another shape than the config's")
    module.ema.module.load_state_dict(torch.nn.ModuleDict(module.networks()).state_dict())


def ldm_stage(
    config_path: Path,
    latents: Path,
    vq_dir: Path,
    out: Path,
    validation: list[Pose] | None = None,
    init: str | Path | None = None,
) -> Stage:
    """The diffusion stage: cached latents in, a pipeline folder (EMA weights) out; `init` to fine-tune."""
    config = with_measured_scale(load_config(LDMRunConfig, config_path), latents)
    train = config.train
    stream = cache_stream(latents, "latent", seed=train.seed)
    if validation is None:
        validation = [s["pose"] for s in read_cache(latents, "latent", limit=4)]
    vq = load_vq(vq_dir)  # checked before training, not after
    grid = SampleGrid(validation, vq, out / "samples", train.sample_every, train.sample_steps)
    torch.manual_seed(train.seed)
    text_encoder = make_text_encoder(config, cache_tags(latents) if config.text.kind == "tags" else [])
    torch.manual_seed(train.seed)  # the same start for the networks with or without text
    module = LatentDiffusionModule(config, text_encoder)
    if init is not None:
        start_from(module, init)

    def export(module: LatentDiffusionModule, steps: int) -> Path:
        model_dir = out / "model"
        pipeline = build_pipeline(module, vq.cpu())
        with atomic_dir(model_dir) as tmp:
            pipeline.save_pretrained(tmp, safe_serialization=True)
            started = None if init is None else str(init)
            info = {"kind": "ldm", "steps": steps, "config": to_dict(config), "init": started}
            (tmp / "posedraw.json").write_text(json.dumps(info, indent=1) + "\n")
        grid.write(module, steps)
        return model_dir

    return Stage(
        name="ldm", config=config, module=module, stream=stream, collate=collate_cached, batch_size=train.batch_size,
        num_workers=train.num_workers, max_steps=train.max_steps, checkpoint_every=train.checkpoint_every,
        seed=train.seed, export=export, callbacks=[grid],
    )  # fmt: skip


def train_ldm(
    config_path: Path,
    latents: Path,
    vq_dir: Path,
    options: RunOptions,
    validation: list[Pose] | None = None,
    init: str | Path | None = None,
) -> Path | None:
    """Train (or resume) a diffusion model on a latent cache; export `<out>/model` (a pipeline folder).
    `init`: start from that diffusion model's weights (ignored when resuming: the checkpoint has them)."""
    return run_stage(ldm_stage(config_path, latents, vq_dir, options.out, validation, init), options)
