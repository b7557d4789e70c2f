"""Drawing with the code transformer: poses -> code grids (KV-cached sampling) -> VQ decoder -> images.

A model folder made by `posedraw train transformer` holds `vq/`, `transformer/` (GPT-2) and
`posedraw.json` with kind "transformer"; `load_code_pipeline` reads it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel

from posedraw.config import from_dict
from posedraw.errors import CheckpointError, PosedrawError
from posedraw.models.transformer import CodeSampler, Sampling, TransformerConfig, pose_tokens
from posedraw.models.vq import decode_codes, latents_from_codes, load_vq
from posedraw.pose import Pose

KIND = "transformer"


@dataclass
class CodeOutput:
    images: torch.Tensor  # (B, 3, H, W) in about [-1, 1]
    codes: torch.Tensor  # (B, h, w) code indices
    vq_latents: torch.Tensor  # (B, C, h, w) the codes' codebook vectors (CLIP tuning starts here)
    intermediates: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # none: codes come in raster order


class CodeTransformerPipeline:
    def __init__(self, vq, model: GPT2LMHeadModel, config: TransformerConfig, pose_dropout: float = 0.0) -> None:
        self.vq, self.model, self.config = vq, model.eval(), config
        self.pose_dropout = pose_dropout  # > 0: trained with the null pose, so guidance has a meaning
        self.sampler = CodeSampler(model, config)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (int(self.vq.config.vq_embed_dim), self.config.grid, self.config.grid)

    def check_pose(self, pose: Pose) -> None:
        """Raise PoseError if this model cannot draw `pose` (no body joint, more than one person)."""
        pose_tokens([pose], self.config)

    def to(self, device: str | torch.device) -> CodeTransformerPipeline:
        self.vq.to(device)
        self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(
        self,
        poses: Sequence[Pose],
        seeds: Sequence[int],
        sampling: Sampling | None = None,
        use_cache: bool = True,
        progress: bool = True,
    ) -> CodeOutput:
        sampling = sampling or Sampling()
        if sampling.guidance != 1.0 and self.pose_dropout <= 0:
            raise PosedrawError("--guidance: this transformer was trained without pose dropout (no null pose); use 1")
        codes = self.sampler(poses, seeds, sampling, use_cache=use_cache, progress=progress)
        return CodeOutput(decode_codes(self.vq, codes).float(), codes, latents_from_codes(self.vq, codes).float())


def is_code_model(folder: Path) -> bool:
    info = folder / "posedraw.json"
    try:
        return info.is_file() and json.loads(info.read_text()).get("kind") == KIND
    except ValueError:
        return False


def load_code_pipeline(folder: str | Path, device: str | torch.device = "cpu") -> CodeTransformerPipeline:
    folder = Path(folder)
    try:
        info = json.loads((folder / "posedraw.json").read_text())
        config = from_dict(TransformerConfig, info["config"]["model"])
        pose_dropout = float(info["config"]["train"]["pose_dropout"])
        model = GPT2LMHeadModel.from_pretrained(folder / "transformer", use_safetensors=True)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{folder}: not a loadable transformer model folder ({exc.__class__.__name__})") from None
    return CodeTransformerPipeline(load_vq(folder), model, config, pose_dropout).to(device)


__all__ = ["CodeOutput", "CodeTransformerPipeline", "is_code_model", "load_code_pipeline"]
