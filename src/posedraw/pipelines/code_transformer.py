"""`CodeTransformerPipeline`: poses in, drawings out, by a GPT-2 over VQ codes.

A diffusers DiffusionPipeline of three components: `transformer` (transformers' GPT2LMHeadModel), `vq`
(VQModel) and `pose_encoder` (models/code_conditioning.py: the pose prefix and pose maps). Saved and
loaded with `save_pretrained` / `from_pretrained` and `model_index.json`, like the diffusion pipeline, and
called the same way: `pipe(poses, seeds=..., temperature=..., top_k=..., top_p=..., guidance=...)`
returning a `Drawing` with the code grids; a model trained with tags also takes `prompt`,
`negative_prompt` and `text_guidance` (two-condition guidance on the logits, models/guidance.py).
Intermediates are the partial code grids, decoded every k codes with the codes not drawn yet shown as
code 0.

Folders written by earlier versions (`vq/`, `transformer/`, `posedraw.json` of kind "transformer", no
`model_index.json`) load with `from_folder_of_earlier_version`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from diffusers import VQModel
from transformers import GPT2LMHeadModel

from posedraw.config import from_dict
from posedraw.models.code_conditioning import CodePoseEncoder
from posedraw.models.files import READ_ERRORS, check_component_files, read_failure
from posedraw.models.transformer import CodeSampler, Sampling, TransformerConfig, pose_encoder_for
from posedraw.models.vq import decode_codes, latents_from_codes, load_vq
from posedraw.pipelines.drawing import (
    GUIDANCE_EXPECTED,
    MAX_GUIDANCE,
    Drawing,
    DrawingPipeline,
    Option,
    finite_images,
    number_in,
)
from posedraw.pose import Pose

#: the `kind` in posedraw.json of model folders of earlier versions
EARLIER_KIND = "transformer"


class CodeTransformerPipeline(DrawingPipeline):
    KIND = "transformer"
    # temperature: at 0.01 a draw is already the likeliest code (divide logits by less and they overflow),
    # at 10 nearly uniform; top_p: below 1e-6 (where float32 rounds a mass to 0) only the likeliest code is
    # kept anyway; top_k: more than the codebook keeps every code
    OPTIONS = MappingProxyType({
        "temperature": Option("--temperature", 1.0, "a number from 0.01 to 10", number_in(0.01, 10)),
        "top_k": Option("--top-k", None, "an integer >= 1", number_in(1, math.inf, integer=True)),
        "top_p": Option("--top-p", None, "a number from 0.000001 to 1", number_in(1e-6, 1)),
        "guidance": Option("--guidance", 1.0, GUIDANCE_EXPECTED, number_in(0, MAX_GUIDANCE)),
        "progress_row": Option("--progress-row", False, "true or false", lambda v: isinstance(v, bool)),
    })  # fmt: skip

    def __init__(self, transformer: GPT2LMHeadModel, vq: VQModel, pose_encoder: CodePoseEncoder) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, vq=vq, pose_encoder=pose_encoder)
        self.compiled = False

    def accelerate(self, compile: bool = False) -> CodeTransformerPipeline:
        """Speed switch, off by default until a GPU run measures it faster (docs/speed.md): `compile` draws
        each code through the compiled fixed-shape step (models/compile.py; CUDA graphs on CUDA)."""
        self.compiled = compile
        return self

    @property
    def takes_text(self) -> bool:
        return self.pose_encoder.takes_text

    def unknown_prompt_words(self, prompts: Sequence[str]) -> list[str]:
        return self.pose_encoder.unknown(prompts) if self.takes_text else []

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        grid = self.pose_encoder.config.grid
        return (int(self.vq.config.vq_embed_dim), grid, grid)

    def check_pose(self, pose: Pose) -> None:
        """Raise PoseError if this model cannot draw `pose` (no body joint, more than one person)."""
        self.pose_encoder.check([pose])

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Each value on its own (drawing.py, which refuses per-person prompts: no code transformer takes them),
        then guidance, which needs a model trained with pose dropout."""
        super().check_options(options)
        self.pose_encoder.check_guidance(self.resolved_options(options)["guidance"])

    @torch.no_grad()
    def __call__(
        self,
        poses: Sequence[Pose],
        seeds: Sequence[int] | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        guidance: float = 1.0,
        codes_every: int | None = None,
        progress_row: bool = False,
        use_cache: bool = True,
        prompt: str | Sequence[str] = "",
        negative_prompt: str | Sequence[str] = "",
        text_guidance: float = 1.0,
        person_prompts: Sequence[str] | Sequence[Sequence[str]] | None = None,
        person_negative_prompts: Sequence[str] | Sequence[Sequence[str]] | None = None,
    ) -> Drawing:
        """Draw one code grid per (pose, seed) and decode it. Intermediates every `codes_every` codes, or 8 of
        them with `progress_row`; `use_cache=False` recomputes the sequence every step (the reference).
        `prompt` / `negative_prompt` (one for all, or one per pose) and `text_guidance`: models with tags.
        `person_prompts` / `person_negative_prompts` (default: the poses' own): refused, as by every model not
        trained with per-person prompts (drawing.py's `check_options`)."""
        options = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "guidance": guidance,
                   "progress_row": progress_row, "prompt": prompt, "negative_prompt": negative_prompt,
                   "text_guidance": text_guidance, "person_prompts": person_prompts,
                   "person_negative_prompts": person_negative_prompts}  # fmt: skip
        seeds, text = self.check_call(poses, seeds, options)
        if progress_row and codes_every is None:
            codes_every = max(1, self.pose_encoder.config.grid**2 // 8)
        sampler = CodeSampler(self.transformer, self.pose_encoder, self.compiled)
        sampling = Sampling(temperature, top_k, top_p, guidance, text_guidance)
        progress = not self._progress_disabled()
        codes, partial = sampler(poses, seeds, sampling, use_cache, progress, codes_every, text.prompts,
                                 text.negatives)  # fmt: skip
        intermediates = [(count, self._decode_partial(drawn)) for count, drawn in partial]
        return Drawing(finite_images(decode_codes(self.vq, codes).float()), latents_from_codes(self.vq, codes).float(),
                       codes=codes, intermediates=intermediates)  # fmt: skip

    def _decode_partial(self, drawn: torch.Tensor) -> torch.Tensor:
        grid = self.pose_encoder.config.grid
        full = torch.zeros(drawn.shape[0], grid * grid, dtype=drawn.dtype, device=drawn.device)
        full[:, : drawn.shape[1]] = drawn
        return decode_codes(self.vq, full.view(-1, grid, grid)).float()

    def _progress_disabled(self) -> bool:
        return bool(getattr(self, "_progress_bar_config", {}).get("disable", False))

    @classmethod
    def from_folder_of_earlier_version(cls, folder: str | Path) -> CodeTransformerPipeline:
        """A pipeline from a folder written before transformers were pipelines (vq/, transformer/ and
        posedraw.json); such models have a prefix and no pose maps."""
        folder = Path(folder)
        check_component_files(folder, ["transformer", "vq"])
        try:
            info = json.loads((folder / "posedraw.json").read_text())
            config = from_dict(TransformerConfig, info["config"]["model"])
            null_pose = float(info["config"]["train"]["pose_dropout"]) > 0
            model = GPT2LMHeadModel.from_pretrained(folder / "transformer", use_safetensors=True)
        except READ_ERRORS as exc:
            raise read_failure(folder, "transformer model folder", exc) from None
        return cls(model.eval(), load_vq(folder), pose_encoder_for(config, null_pose))


def is_folder_of_earlier_version(folder: Path) -> bool:
    info = folder / "posedraw.json"
    try:
        return not (folder / "model_index.json").is_file() and json.loads(info.read_text()).get("kind") == EARLIER_KIND
    except (OSError, ValueError):
        return False


__all__ = ["CodeTransformerPipeline", "is_folder_of_earlier_version"]
