"""`KeypointLDMPipeline`: poses in, drawings out, by latent diffusion with a pose encoder.

A diffusers DiffusionPipeline of four components: `unet` (UNet2DConditionModel), `vq` (VQModel, the first
stage), `scheduler` (the trained noise schedule; the sampler is chosen per call) and `pose_encoder`. It is
saved and loaded with `save_pretrained` / `from_pretrained` (safetensors, no pickle).

Latents: the diffusion model works on `vq latent * vq.config.scaling_factor`; a latent is divided by the
factor before decoding, and decoding quantizes it first, as the original does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from diffusers import DiffusionPipeline, UNet2DConditionModel, VQModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from posedraw.devices import inference_autocast
from posedraw.errors import PosedrawError
from posedraw.models.conditioning import PoseConditioning, PoseEncoder
from posedraw.models.vq import decode
from posedraw.pipelines.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS, make_sampler, step_kwargs
from posedraw.pose import Pose


@dataclass
class KeypointLDMOutput:
    images: torch.Tensor  # (B, 3, H, W) in about [-1, 1]
    latents: torch.Tensor  # (B, C, h, w) final diffusion latents
    vq_latents: torch.Tensor  # latents / scaling_factor: the VQ's pre-quantization space (CLIP tuning starts here)
    intermediates: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, decoded x0 prediction)


def predicted_x0(model_input: torch.Tensor, output: torch.Tensor, alpha_bar: torch.Tensor, kind: str) -> torch.Tensor:
    """The clean latent a network output implies, from the variance-preserving model input."""
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if kind == "epsilon":
        return (model_input - s * output) / a
    if kind == "v_prediction":
        return a * model_input - s * output
    return output


def initial_noise(seeds: Sequence[int], shape: tuple[int, int, int]) -> torch.Tensor:
    """One seeded Gaussian draw per image, made on the CPU so a seed gives the same start on every device."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


class KeypointLDMPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "pose_encoder->unet->vq"

    def __init__(
        self, unet: UNet2DConditionModel, vq: VQModel, scheduler: SchedulerMixin, pose_encoder: PoseEncoder
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, vq=vq, scheduler=scheduler, pose_encoder=pose_encoder)

    def check_pose(self, pose: Pose) -> None:
        """Raise PoseError if this model cannot draw `pose` (no body joint, more people than it draws)."""
        self.pose_encoder.prepare([pose])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        return (self.vq.config.vq_embed_dim, *size)

    def _conditioning(self, poses: Sequence[Pose], guidance: float) -> tuple[PoseConditioning, bool]:
        size = self.latent_shape[1:]
        prepared = {k: v.to(self.device) for k, v in self.pose_encoder.prepare(poses).items()}
        cond = self.pose_encoder(**prepared, latent_size=size)
        if guidance == 1.0:
            return cond, False
        return PoseConditioning.cat([self.pose_encoder.null(len(poses), size), cond]), True

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, cond: PoseConditioning, guided: bool, guidance: float):
        if guided:  # one batch: [null pose | pose], conditioning already stacked that way
            x = torch.cat([x, x])
        unet_input = x if cond.maps is None else torch.cat([x, cond.maps.to(x.dtype)], dim=1)
        with inference_autocast(self.device):
            output = self.unet(unet_input, t, encoder_hidden_states=cond.context).sample.float()
        if guided:
            unconditional, conditional = output.chunk(2)
            output = unconditional + guidance * (conditional - unconditional)
        return output

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return decode(self.vq, latents / self.vq.config.scaling_factor)

    @torch.no_grad()
    def __call__(
        self,
        poses: Sequence[Pose],
        seeds: Sequence[int] | None = None,
        latents: torch.Tensor | None = None,
        sampler: str | SchedulerMixin = DEFAULT_SAMPLER,
        steps: int = DEFAULT_STEPS,
        eta: float = 0.0,
        guidance: float = 1.0,
        x0_every: int | None = None,
    ) -> KeypointLDMOutput:
        """Draw one image per pose. `seeds` (one per pose) or `latents` (B, C, h, w) fix the start noise.

        `sampler` is a name from `posedraw.pipelines.samplers.SAMPLERS` or a configured scheduler.
        """
        batch = len(poses)
        seeds = list(seeds) if seeds is not None else list(range(batch))
        if len(seeds) != batch:
            raise PosedrawError(f"seeds: expected one per pose ({batch}), got {len(seeds)}")
        if steps < 1:
            raise PosedrawError(f"--steps: expected at least 1, got {steps}")
        scheduler = make_sampler(sampler, dict(self.scheduler.config)) if isinstance(sampler, str) else sampler
        scheduler.set_timesteps(steps, device=self.device)
        if int(scheduler.timesteps.max()) >= scheduler.config.num_train_timesteps:
            # leading spacing with offset 1 (the original DDIM grid) cannot use every train step
            raise PosedrawError(f"--steps: at most {scheduler.config.num_train_timesteps - 1} for this sampler")
        if latents is None:
            latents = initial_noise(seeds, self.latent_shape)
        elif tuple(latents.shape) != (batch, *self.latent_shape):
            raise PosedrawError(f"latents: expected shape {(batch, *self.latent_shape)}, got {tuple(latents.shape)}")
        x = latents.to(self.device, torch.float32) * scheduler.init_noise_sigma
        cond, guided = self._conditioning(poses, guidance)
        generators = [torch.Generator().manual_seed(int(s) + 1) for s in seeds]  # noise of stochastic samplers
        kwargs = step_kwargs(scheduler, eta, generators)
        intermediates = []
        alphas = scheduler.alphas_cumprod.to(self.device)
        for i, t in enumerate(self.progress_bar(scheduler.timesteps)):
            model_input = scheduler.scale_model_input(x, t)
            output = self._denoise(model_input, t, cond, guided, guidance)
            if x0_every and (i % x0_every == 0 or i == len(scheduler.timesteps) - 1):
                x0 = predicted_x0(model_input, output, alphas[round(float(t))], scheduler.config.prediction_type)
                intermediates.append((i, self.decode_latents(x0)))
            x = scheduler.step(output, t, x, **kwargs).prev_sample
        images = self.decode_latents(x)
        return KeypointLDMOutput(images, x, x / self.vq.config.scaling_factor, intermediates)
