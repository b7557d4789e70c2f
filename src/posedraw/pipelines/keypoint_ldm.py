"""`KeypointLDMPipeline`: poses in, drawings out, by latent diffusion with a pose encoder.

A diffusers DiffusionPipeline of four components: `unet` (UNet2DConditionModel), `vq` (VQModel, the first
stage), `scheduler` (the trained noise schedule; the sampler is chosen per call) and `pose_encoder`, and a
fifth, `text_encoder`, for models trained with text (its tokens follow the pose's in the cross-attention
context; guidance then has a pose and a text scale, `models/guidance.py`). It is saved and loaded with
`save_pretrained` / `from_pretrained` (safetensors, no pickle).

Latents: the diffusion model works on `vq latent * vq.config.scaling_factor`; a latent is divided by the
factor before decoding, and decoding quantizes it first, as the original does.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import ClassVar

import torch
from diffusers import UNet2DConditionModel, VQModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from posedraw.devices import inference_autocast
from posedraw.errors import PosedrawError
from posedraw.models.conditioning import PoseConditioning, PoseEncoder
from posedraw.models.guidance import Branch, GuidanceScales
from posedraw.models.text import TextEncoder
from posedraw.models.vq import decode
from posedraw.pipelines.drawing import Drawing, DrawingPipeline, Option, at_least, check_seeds
from posedraw.pipelines.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS, make_sampler, step_kwargs
from posedraw.pose import Pose


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


class KeypointLDMPipeline(DrawingPipeline):
    model_cpu_offload_seq = "pose_encoder->text_encoder->unet->vq"
    _optional_components: ClassVar[list[str]] = ["text_encoder"]
    KIND = "diffusion"
    OPTIONS = MappingProxyType({
        "sampler": Option("--sampler", DEFAULT_SAMPLER, f"one of {', '.join(SAMPLERS)}", lambda v: v in SAMPLERS,
                          tuple(SAMPLERS)),
        "steps": Option("--steps", DEFAULT_STEPS, "an integer >= 1", at_least(1, integer=True)),
        "eta": Option("--eta", 0.0, "a number >= 0", at_least(0)),
        "guidance": Option("--guidance", 1.0, "a number >= 0 (1 = off)", at_least(0)),
        "latents": Option("--latents", None, "start latents"),
        "progress_row": Option("--progress-row", False, "true or false", lambda v: isinstance(v, bool)),
    })  # fmt: skip

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vq: VQModel,
        scheduler: SchedulerMixin,
        pose_encoder: PoseEncoder,
        text_encoder: TextEncoder | None = None,
    ) -> None:
        super().__init__()
        self.register_modules(
            unet=unet, vq=vq, scheduler=scheduler, pose_encoder=pose_encoder, text_encoder=text_encoder
        )

    def check_pose(self, pose: Pose) -> None:
        """Raise PoseError if this model cannot draw `pose` (no body joint, more people than it draws)."""
        self.pose_encoder.prepare([pose])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        return (self.vq.config.vq_embed_dim, *size)

    def _conditioning(
        self, poses: Sequence[Pose], scales: GuidanceScales, prompts: list[str], negatives: list[str]
    ) -> tuple[PoseConditioning, list[Branch]]:
        """The conditioning of every branch the guidance needs, stacked along the batch in branch order."""
        size = self.latent_shape[1:]
        prepared = {k: v.to(self.device) for k, v in self.pose_encoder.prepare(poses).items()}
        posed, null = self.pose_encoder(**prepared, latent_size=size), None
        with_text = self.takes_text and any(prompts)
        branches = scales.branches(with_text)
        if any(not with_pose for with_pose, _ in branches):
            null = self.pose_encoder.null(len(poses), size)
        texts = {}
        if self.takes_text:
            texts = {with_text: self.text_encoder(**self.text_encoder.prepare(prompts if with_text else negatives))
                     for with_text in {t for _, t in branches}}  # fmt: skip
        pooled = getattr(self.unet.config, "class_embed_type", None) == "projection"
        parts = []
        for with_pose, with_text in branches:
            pose = posed if with_pose else null
            parts.append(pose if not texts else pose.with_text(texts[with_text], pooled))
        return PoseConditioning.cat(parts), branches

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, cond: PoseConditioning, branches: list[Branch], scales):
        x = x.repeat(len(branches), 1, 1, 1)  # one batch: every branch the guidance needs
        unet_input = x if cond.maps is None else torch.cat([x, cond.maps.to(x.dtype)], dim=1)
        with inference_autocast(self.device):
            output = self.unet(unet_input, t, encoder_hidden_states=cond.context, class_labels=cond.pooled).sample
            output = output.float()
        return scales.combine(output, branches)

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
        progress_row: bool = False,
        prompt: str | Sequence[str] = "",
        negative_prompt: str | Sequence[str] = "",
        text_guidance: float = 1.0,
    ) -> Drawing:
        """Draw one image per pose. `seeds` (one per pose) or `latents` (B, C, h, w) fix the start noise.

        `sampler` is a name from `posedraw.pipelines.samplers.SAMPLERS` or a configured scheduler.
        Intermediates (the decoded x0 prediction) every `x0_every` steps, or 8 of them with `progress_row`.
        `prompt` / `negative_prompt` (one for all poses, or one per pose) and `text_guidance` need a model
        trained with text; `guidance` is the pose scale.
        """
        batch = len(poses)
        seeds = check_seeds(list(poses), seeds)
        if progress_row and x0_every is None:
            x0_every = max(1, steps // 8)
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
        prompts, negatives = per_pose(prompt, batch, "prompt"), per_pose(negative_prompt, batch, "negative_prompt")
        if not self.takes_text and (any(prompts) or any(negatives)):
            raise PosedrawError("--prompt: this model was trained without text (it draws from the pose alone)")
        scales = GuidanceScales(guidance, text_guidance)
        cond, branches = self._conditioning(poses, scales, prompts, negatives)
        generators = [torch.Generator().manual_seed(int(s) + 1) for s in seeds]  # noise of stochastic samplers
        kwargs = step_kwargs(scheduler, eta, generators)
        intermediates = []
        alphas = scheduler.alphas_cumprod.to(self.device)
        for i, t in enumerate(self.progress_bar(scheduler.timesteps)):
            model_input = scheduler.scale_model_input(x, t)
            output = self._denoise(model_input, t, cond, branches, scales)
            if x0_every and (i % x0_every == 0 or i == len(scheduler.timesteps) - 1):
                x0 = predicted_x0(model_input, output, alphas[round(float(t))], scheduler.config.prediction_type)
                intermediates.append((i, self.decode_latents(x0)))
            x = scheduler.step(output, t, x, **kwargs).prev_sample
        images = self.decode_latents(x)
        return Drawing(images, x / self.vq.config.scaling_factor, latents=x, intermediates=intermediates)


def per_pose(prompt: str | Sequence[str], batch: int, name: str) -> list[str]:
    """One prompt per pose: a string is everyone's."""
    prompts = [prompt] * batch if isinstance(prompt, str) else [str(p) for p in prompt]
    if len(prompts) != batch:
        raise PosedrawError(f"{name}: expected one prompt or one per pose ({batch}), got {len(prompts)}")
    return prompts
