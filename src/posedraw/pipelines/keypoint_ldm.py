"""`KeypointLDMPipeline`: poses in, drawings out, by latent diffusion with a pose encoder.

A diffusers DiffusionPipeline of four components: `unet` (UNet2DConditionModel), `vq` (VQModel, the first
stage), `scheduler` (the trained noise schedule; the sampler is chosen per call) and `pose_encoder`, and a
fifth, `text_encoder`, for models trained with text (its tokens follow the pose's in the cross-attention
context; guidance then has a pose and a text scale, `models/guidance.py`). It is saved and loaded with
`save_pretrained` / `from_pretrained` (safetensors, no pickle).

Latents: the diffusion model works on `vq latent * vq.config.scaling_factor`; a latent is divided by the
factor before decoding, and decoding quantizes it first, as the original does.

Every option is checked before any work (`check_options`, drawing.py). A step that still produces inf or
nan (a damaged model, start latents too large for it) is noted on the device without a host sync and
raised once, before decoding, as a `SamplingError` naming the first such step (models/nonfinite.py).
The network runs through `denoise` (models/unet.py), the call training uses too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from diffusers import UNet2DConditionModel, VQModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from posedraw.devices import inference_autocast
from posedraw.errors import PosedrawError
from posedraw.models.compile import compile_unet
from posedraw.models.conditioning import PoseConditioning, PoseEncoder
from posedraw.models.diffusion_math import predicted_x0
from posedraw.models.guidance import Branch, GuidanceScales
from posedraw.models.nonfinite import FirstNonFinite
from posedraw.models.person_text import person_vectors
from posedraw.models.text import TextEncoder
from posedraw.models.unet import denoise
from posedraw.models.vq import decode
from posedraw.pipelines.drawing import (
    GUIDANCE_EXPECTED,
    MAX_GUIDANCE,
    CallText,
    Drawing,
    DrawingPipeline,
    Option,
    finite_images,
    number_in,
)
from posedraw.pipelines.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS, checked_sampler, step_kwargs
from posedraw.pose import Pose


def initial_noise(seeds: Sequence[int], shape: tuple[int, int, int]) -> torch.Tensor:
    """One seeded Gaussian draw per image, made on the CPU so a seed gives the same start on every device."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


class KeypointLDMPipeline(DrawingPipeline):
    model_cpu_offload_seq = "pose_encoder->text_encoder->unet->vq"
    _optional_components: ClassVar[list[str]] = ["text_encoder"]
    KIND = "diffusion"
    # steps: at most one per train step (a sampler may allow one fewer: check_options); eta: DDIM's
    # interpolation from deterministic (0) to DDPM-like noise (1), beyond which its noise term has no meaning
    OPTIONS = MappingProxyType({
        "sampler": Option("--sampler", DEFAULT_SAMPLER, f"one of {', '.join(SAMPLERS)}",
                          lambda v: isinstance(v, SchedulerMixin) or (isinstance(v, str) and v in SAMPLERS),
                          tuple(SAMPLERS)),
        "steps": Option("--steps", DEFAULT_STEPS, "an integer from 1 to 1000", number_in(1, 1000, integer=True)),
        "eta": Option("--eta", 0.0, "a number from 0 to 1", number_in(0, 1)),
        "guidance": Option("--guidance", 1.0, GUIDANCE_EXPECTED, number_in(0, MAX_GUIDANCE)),
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

    @property
    def takes_person_prompts(self) -> bool:
        """A model with text whose pose encoder binds a prompt to each person's joints (its own property)."""
        return self.takes_text and self.pose_encoder.takes_person_prompts

    def check_pose(self, pose: Pose) -> None:
        """Raise PoseError if this model cannot draw `pose` (no body joint, more people than it draws)."""
        self.pose_encoder.prepare([pose])

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Each value on its own (drawing.py), then what this model and its samplers refuse together: steps
        past the sampler's grid, eta for a sampler without one, guidance without a null pose, start latents
        of another shape or with non-finite values (per-person prompts: drawing.py, by `takes_person_prompts`)."""
        super().check_options(options)
        values = self.resolved_options(options)
        self._scheduler(values["sampler"], values["steps"], values["eta"])
        if values["guidance"] != 1.0 and not self.pose_encoder.has_null:
            raise PosedrawError(
                f"--guidance: the {self.pose_encoder.kind} pose encoder was trained without a null pose, so "
                "classifier-free guidance is not available for this model (use 1)"
            )
        latents = values["latents"]
        if isinstance(latents, torch.Tensor):  # the command line checks its .npy file itself
            if latents.dim() != 4 or tuple(latents.shape[1:]) != self.latent_shape:
                raise PosedrawError(f"latents: expected shape (N, {', '.join(map(str, self.latent_shape))}), "
                                    f"got {tuple(latents.shape)}")  # fmt: skip
            if not torch.isfinite(latents).all():
                raise PosedrawError("latents: expected finite numbers")

    def _scheduler(self, sampler: str | SchedulerMixin, steps: int, eta: float) -> SchedulerMixin:
        return checked_sampler(sampler, dict(self.scheduler.config), steps, eta)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        return (self.vq.config.vq_embed_dim, *size)

    def _conditioning(
        self, poses: Sequence[Pose], scales: GuidanceScales, text: CallText
    ) -> tuple[PoseConditioning, list[Branch]]:
        """The conditioning of every branch the guidance needs, stacked along the batch in branch order.

        A pose encoder that takes per-person prompts (`takes_person_prompts`) binds each person's prompt
        to that person in the branches with text, and each person's negative prompt (or none) in those
        without; `check_options` refuses per-person prompts for every other encoder, so they never reach
        one that would ignore them."""
        size = self.latent_shape[1:]
        # any text, negatives included: without a prompt the branch "with text" is the empty prompt, and a
        # negative alone must only be guided away from, never drawn as the one prompt of the call
        said = [*text.prompts, *text.negatives]
        if self.takes_person_prompts:
            said += [p for people in (*text.person_prompts, *text.person_negatives) for p in people]
        with_text = self.takes_text and any(said)
        branches = scales.branches(with_text)
        null = None
        if any(not with_pose for with_pose, _ in branches):
            null = self.pose_encoder.null(len(poses), size)
        posed_texts = {t for with_pose, t in branches if with_pose}
        if self.takes_person_prompts:  # the branches with and without text bind different prompts
            posed = {t: self.pose_conditioning(text.posed(poses, negative=not t)) for t in posed_texts}
        else:
            posed = dict.fromkeys(posed_texts, self.pose_conditioning(poses))
        texts = {}
        if self.takes_text:
            texts = {t: self.text_encoder(**self.text_encoder.prepare(text.prompts if t else text.negatives))
                     for t in {t for _, t in branches}}  # fmt: skip
        pooled = getattr(self.unet.config, "class_embed_type", None) == "projection"
        parts = []
        for with_pose, with_text in branches:
            pose = posed[with_text] if with_pose else null
            parts.append(pose if not texts else pose.with_text(texts[with_text], pooled))
        return PoseConditioning.cat(parts), branches

    def pose_conditioning(self, poses: Sequence[Pose]) -> PoseConditioning:
        """The poses' conditioning (no text tokens yet), each person's prompt (`Pose.prompts`) bound to that
        person when the pose encoder takes them: the one way from poses to the UNet's pose inputs."""
        size = self.latent_shape[1:]
        prepared = self.pose_encoder.prepare(poses)
        slot_prompts = prepared.pop("person_prompts", None)
        tensors = {k: v.to(self.device) for k, v in prepared.items()}
        if slot_prompts is not None:
            tensors["person_text"] = person_vectors(self.text_encoder, slot_prompts)
        return self.pose_encoder(**tensors, latent_size=size)

    def accelerate(
        self, compile: bool = False, channels_last: bool = False, cast_once: bool = False
    ) -> KeypointLDMPipeline:
        """Speed switches for sampling, each off by default until a GPU run measures it faster (docs/speed.md):
        `compile` the UNet (models/compile.py: inductor, CUDA graphs on CUDA; same images within float
        tolerance), `channels_last` memory for its convolutions, `cast_once`: its weights in bf16 once,
        run without autocast (which otherwise casts every weight at every step). Call after `.to(device)`."""
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        if cast_once:
            self.unet.to(torch.bfloat16)
        if compile:
            compile_unet(self.unet, self.device)
        return self

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, cond: PoseConditioning, branches: list[Branch], scales):
        x = x.repeat(len(branches), 1, 1, 1)  # one batch: every branch the guidance needs
        dtype = self.unet.dtype
        if dtype != torch.float32:  # weights cast once (accelerate): inputs in their dtype, no autocast
            output = denoise(self.unet, x.to(dtype), t, _cast(cond, dtype)).float()
        else:
            with inference_autocast(self.device):
                output = denoise(self.unet, x, t, cond).float()
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
        person_prompts: Sequence[str] | Sequence[Sequence[str]] | None = None,
        person_negative_prompts: Sequence[str] | Sequence[Sequence[str]] | None = None,
    ) -> Drawing:
        """Draw one image per pose. `seeds` (one per pose) or `latents` (B, C, h, w) fix the start noise.

        `sampler` is a name from `posedraw.pipelines.samplers.SAMPLERS` or a configured scheduler.
        Intermediates (the decoded x0 prediction) every `x0_every` steps, or 8 of them with `progress_row`.
        `prompt` / `negative_prompt` (one for all poses, or one per pose) and `text_guidance` need a model
        trained with text; `guidance` is the pose scale. `person_prompts` / `person_negative_prompts`: one text
        per person of every pose, or one list per pose (default: each pose's own `prompts`); only a model
        trained with per-person prompts takes them (`takes_person_prompts`).
        """
        batch = len(poses)
        options = {"sampler": sampler, "steps": steps, "eta": eta, "guidance": guidance, "latents": latents,
                   "progress_row": progress_row, "prompt": prompt, "negative_prompt": negative_prompt,
                   "text_guidance": text_guidance, "person_prompts": person_prompts,
                   "person_negative_prompts": person_negative_prompts}  # fmt: skip
        seeds, text = self.check_call(poses, seeds, options)
        if progress_row and x0_every is None:
            x0_every = max(1, steps // 8)
        scheduler = self._scheduler(sampler, steps, eta)
        scheduler.set_timesteps(steps, device=self.device)
        if latents is None:
            latents = initial_noise(seeds, self.latent_shape)
        elif latents.shape[0] != batch:
            raise PosedrawError(f"latents: expected shape {(batch, *self.latent_shape)}, got {tuple(latents.shape)}")
        x = latents.to(self.device, torch.float32) * scheduler.init_noise_sigma
        scales = GuidanceScales(guidance, text_guidance)
        cond, branches = self._conditioning(poses, scales, text)
        generators = [torch.Generator().manual_seed(int(s) + 1) for s in seeds]  # noise of stochastic samplers
        kwargs = step_kwargs(scheduler, eta, generators)
        intermediates = []
        alphas = scheduler.alphas_cumprod.to(self.device)
        nonfinite = FirstNonFinite(self.device)
        for i, t in enumerate(self.progress_bar(scheduler.timesteps)):
            model_input = scheduler.scale_model_input(x, t)
            output = self._denoise(model_input, t, cond, branches, scales)
            if x0_every and (i % x0_every == 0 or i == len(scheduler.timesteps) - 1):
                alpha_bar = alphas[t.round().long()]  # indexed on the device: no host sync
                x0 = predicted_x0(model_input, output, alpha_bar, scheduler.config.prediction_type)
                intermediates.append((i, self.decode_latents(x0)))
            x = scheduler.step(output, t, x, **kwargs).prev_sample
            nonfinite.note(i, x)
        nonfinite.check(
            f"step {{}} of {len(scheduler.timesteps)}", "try a lower --guidance or --text-guidance, or another sampler"
        )
        images = finite_images(self.decode_latents(x))
        return Drawing(images, x / self.vq.config.scaling_factor, latents=x, intermediates=intermediates)


def _cast(cond: PoseConditioning, dtype: torch.dtype) -> PoseConditioning:
    """The conditioning in the dtype of a UNet whose weights were cast once (no autocast to do it)."""
    return PoseConditioning(*(None if v is None else v.to(dtype) for v in (cond.context, cond.maps, cond.pooled)))
