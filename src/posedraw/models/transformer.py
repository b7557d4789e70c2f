"""The pose-conditioned code transformer: GPT-2 (transformers) over a VQ code grid with a pose prefix.

Sequence: 17 pose tokens, then the h*w code indices in raster order. Vocabulary, one embedding table in
two separate ranges (the codes never share ids with the pose, unlike the original taming set-up):
  [0, num_codes)                         the VQ's code indices
  num_codes + cell                       joint at grid cell `cell` (pose_grid x pose_grid over the image)
  num_codes + pose_grid**2               the joint is absent
  num_codes + pose_grid**2 + 1           the null pose (pose dropout; classifier-free guidance)
Which joint a prefix token describes is its position (0..16), learned by GPT-2's position embeddings.
Only code logits are ever used: training takes cross-entropy over the code range, sampling never
draws a pose id.

Sampling feeds the prefix once and then one token at a time through `IncrementalGPT2`
(models/decoding.py: the same GPT-2 weights with a preallocated KV cache, because transformers' own
cached forward is dominated by Python overhead at small sizes), so neither the prefix nor earlier codes
are recomputed; `use_cache=False` runs transformers' full forward over the whole sequence
every step (the reference the cache is checked against). Each image draws from its own seeded
generator, so a (pose, seed) pair gives the same codes in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import track
from transformers import GPT2Config, GPT2LMHeadModel

from posedraw.devices import inference_autocast
from posedraw.errors import ConfigError, PosedrawError
from posedraw.models.conditioning import people_to_draw, square_normalized
from posedraw.models.decoding import IncrementalGPT2
from posedraw.pose import NUM_JOINTS, Pose


@dataclass(frozen=True)
class TransformerConfig:
    num_codes: int = 0  # the VQ's codebook size (0 in a training config: taken from the code cache)
    grid: int = 0  # code grid side: grid * grid codes per image (0: from the code cache)
    pose_grid: int = 16  # cells per side for joint positions
    layers: int = 12
    heads: int = 8
    width: int = 512
    dropout: float = 0.0

    @property
    def num_positions(self) -> int:
        return NUM_JOINTS + self.grid * self.grid

    @property
    def absent_token(self) -> int:
        return self.num_codes + self.pose_grid**2

    @property
    def null_token(self) -> int:
        return self.absent_token + 1

    def gpt2(self) -> GPT2Config:
        return GPT2Config(
            vocab_size=self.null_token + 1,
            n_positions=self.num_positions,
            n_embd=self.width,
            n_layer=self.layers,
            n_head=self.heads,
            resid_pdrop=self.dropout,
            embd_pdrop=self.dropout,
            attn_pdrop=self.dropout,
            bos_token_id=self.null_token,
            eos_token_id=self.null_token,
            tie_word_embeddings=True,
        )


def build_transformer(config: TransformerConfig) -> GPT2LMHeadModel:
    if config.num_codes <= 0 or config.grid <= 0:
        sizes = f"{config.num_codes} / {config.grid}"
        raise ConfigError(f"model.num_codes / model.grid: expected positive sizes, got {sizes}")
    return GPT2LMHeadModel(config.gpt2())


def pose_tokens(poses: Sequence[Pose], config: TransformerConfig) -> torch.Tensor:
    """(B, 17) prefix ids: each joint's cell of the pose padded to a square (as images are), or absent."""
    rows = []
    for i, pose in enumerate(poses):
        xy, state = square_normalized(pose, people_to_draw(pose, 1, i, "the code transformer")[0])
        cells = np.clip((xy * config.pose_grid).astype(np.int64), 0, config.pose_grid - 1)
        ids = config.num_codes + cells[:, 1] * config.pose_grid + cells[:, 0]
        rows.append(np.where(state > 0, ids, config.absent_token))
    return torch.from_numpy(np.stack(rows))


def null_tokens(batch: int, config: TransformerConfig) -> torch.Tensor:
    return torch.full((batch, NUM_JOINTS), config.null_token, dtype=torch.long)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    guidance: float = 1.0  # classifier-free guidance on logits (1 = off; needs a model trained with dropout)

    def check(self) -> None:
        if self.temperature <= 0:
            raise PosedrawError(f"--temperature: expected > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise PosedrawError(f"--top-k: expected >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise PosedrawError(f"--top-p: expected in (0, 1], got {self.top_p}")


def filter_logits(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Temperature, then top-k, then nucleus (top-p) filtering; removed entries become -inf."""
    logits = logits / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        ordered, order = torch.sort(logits, descending=True, dim=-1)
        probs = ordered.softmax(-1)
        drop = probs.cumsum(-1) - probs >= sampling.top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


class CodeSampler:
    """Draws code grids for poses from a trained GPT-2 (see the module doc)."""

    def __init__(self, model: GPT2LMHeadModel, config: TransformerConfig) -> None:
        self.model, self.config = model.eval(), config

    def _recomputed(self, sequence: torch.Tensor) -> torch.Tensor:
        """Last position's code logits from the whole sequence, without any cache (the reference)."""
        logits = self.model(input_ids=sequence, use_cache=False, logits_to_keep=1).logits
        return logits[:, -1, : self.config.num_codes].float()

    @torch.no_grad()
    def __call__(
        self,
        poses: Sequence[Pose],
        seeds: Sequence[int],
        sampling: Sampling | None = None,
        use_cache: bool = True,
        progress: bool = False,
    ) -> torch.Tensor:
        """(B, grid, grid) code indices, one grid per (pose, seed)."""
        sampling = sampling or Sampling()
        sampling.check()
        if len(seeds) != len(poses):
            raise PosedrawError(f"seeds: expected one per pose ({len(poses)}), got {len(seeds)}")
        device = next(self.model.parameters()).device
        guided = sampling.guidance != 1.0
        prefix = pose_tokens(poses, self.config)
        if guided:
            prefix = torch.cat([prefix, null_tokens(len(poses), self.config)])
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        decoder = IncrementalGPT2(self.model, self.config.num_positions, self.config.num_codes) if use_cache else None
        sequence = step_input = prefix.to(device)
        codes = []
        steps = track(range(self.config.grid**2), "sampling codes", disable=not progress, transient=True)
        with inference_autocast(device):
            for _ in steps:
                logits = decoder.logits(step_input) if decoder is not None else self._recomputed(sequence)
                drawn = self._draw(logits, sampling, generators).to(device)
                codes.append(drawn)
                step_input = torch.cat([drawn, drawn]) if guided else drawn
                if decoder is None:
                    sequence = torch.cat([sequence, step_input], dim=1)
        return torch.cat(codes, dim=1).view(len(poses), self.config.grid, self.config.grid)

    @staticmethod
    def _draw(logits: torch.Tensor, sampling: Sampling, generators: list[torch.Generator]) -> torch.Tensor:
        """(B, 1) codes, each row from its own generator on the CPU so seeds agree across devices."""
        if sampling.guidance != 1.0:
            conditional, unconditional = logits.chunk(2)
            logits = unconditional + sampling.guidance * (conditional - unconditional)
        probs = filter_logits(logits, sampling).softmax(-1).cpu()
        return torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generators, strict=True)])


__all__ = ["CodeSampler", "Sampling", "TransformerConfig", "build_transformer", "filter_logits", "pose_tokens"]
