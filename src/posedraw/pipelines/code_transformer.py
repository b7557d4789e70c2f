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
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import torch
from diffusers import VQModel
from transformers import GPT2LMHeadModel

from posedraw.config import from_dict
from posedraw.errors import CheckpointError, PosedrawError
from posedraw.models.code_conditioning import CodePoseEncoder
from posedraw.models.transformer import CodeSampler, Sampling, TransformerConfig, pose_encoder_for
from posedraw.models.vq import decode_codes, latents_from_codes, load_vq
from posedraw.pipelines.drawing import Drawing, DrawingPipeline, Option, at_least, check_seeds
from posedraw.pipelines.keypoint_ldm import per_pose
from posedraw.pose import Pose

#: the `kind` in posedraw.json of model folders of earlier versions
EARLIER_KIND = "transformer"


def _probability(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1


class CodeTransformerPipeline(DrawingPipeline):
    KIND = "transformer"
    OPTIONS = MappingProxyType({
        "temperature": Option("--temperature", 1.0, "a number > 0", lambda v: at_least(0)(v) and v > 0),
        "top_k": Option("--top-k", None, "an integer >= 1", at_least(1, integer=True)),
        "top_p": Option("--top-p", None, "a number in (0, 1]", _probability),
        "guidance": Option("--guidance", 1.0, "a number >= 0 (1 = off)", at_least(0)),
        "progress_row": Option("--progress-row", False, "true or false", lambda v: isinstance(v, bool)),
    })  # fmt: skip

    def __init__(self, transformer: GPT2LMHeadModel, vq: VQModel, pose_encoder: CodePoseEncoder) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, vq=vq, pose_encoder=pose_encoder)

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
    ) -> Drawing:
        """Draw one code grid per (pose, seed) and decode it. Intermediates every `codes_every` codes, or 8 of
        them with `progress_row`; `use_cache=False` recomputes the sequence every step (the reference).
        `prompt` / `negative_prompt` (one for all, or one per pose) and `text_guidance`: models with tags."""
        seeds = check_seeds(list(poses), seeds)
        prompts, negatives = (
            per_pose(prompt, len(poses), "prompt"),
            per_pose(negative_prompt, len(poses), "negative_prompt"),
        )
        if not self.takes_text and (any(prompts) or any(negatives)):
            raise PosedrawError("--prompt: this model was trained without text (it draws from the pose alone)")
        if progress_row and codes_every is None:
            codes_every = max(1, self.pose_encoder.config.grid**2 // 8)
        sampler = CodeSampler(self.transformer, self.pose_encoder)
        sampling = Sampling(temperature, top_k, top_p, guidance, text_guidance)
        progress = not self._progress_disabled()
        codes, partial = sampler(poses, seeds, sampling, use_cache, progress, codes_every, prompts, negatives)
        intermediates = [(count, self._decode_partial(drawn)) for count, drawn in partial]
        return Drawing(decode_codes(self.vq, codes).float(), latents_from_codes(self.vq, codes).float(),
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
        try:
            info = json.loads((folder / "posedraw.json").read_text())
            config = from_dict(TransformerConfig, info["config"]["model"])
            null_pose = float(info["config"]["train"]["pose_dropout"]) > 0
            model = GPT2LMHeadModel.from_pretrained(folder / "transformer", use_safetensors=True)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{folder}: not a loadable transformer model folder ({exc.__class__.__name__})"
            ) from None
        return cls(model.eval(), load_vq(folder), pose_encoder_for(config, null_pose))


def is_folder_of_earlier_version(folder: Path) -> bool:
    info = folder / "posedraw.json"
    try:
        return not (folder / "model_index.json").is_file() and json.loads(info.read_text()).get("kind") == EARLIER_KIND
    except (OSError, ValueError):
        return False


__all__ = ["CodeTransformerPipeline", "is_folder_of_earlier_version"]
