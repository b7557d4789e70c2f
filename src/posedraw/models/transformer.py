"""The pose-conditioned code transformer: GPT-2 (transformers) over a VQ code grid with a pose prefix and,
in models trained with them, pose maps added along the codes (models/code_conditioning.py).

Sequence: `max_tags` tag tokens (models trained with tags), 17 pose tokens, then the h*w code indices in
raster order. Vocabulary, one embedding table in separate ranges (the codes never share ids with the pose,
unlike the original taming set-up):
  [0, num_codes)                         the VQ's code indices
  num_codes + cell                       joint at grid cell `cell` (pose_grid x pose_grid over the image)
  num_codes + pose_grid**2               the joint is absent
  num_codes + pose_grid**2 + 1           the null pose (pose dropout; classifier-free guidance)
  then one id per tag and a "no tag" id  (models trained with tags)
Which joint a prefix token describes is its position (0..16), learned by GPT-2's position embeddings.
Only code logits are ever used: training takes cross-entropy over the code range, sampling never
draws a pose id.

Sampling feeds the prefix once and then one token at a time through `IncrementalGPT2`
(models/incremental_gpt2.py: the same GPT-2 weights with a preallocated KV cache, because transformers' own
cached forward is dominated by Python overhead at small sizes), so neither the prefix nor earlier codes
are recomputed; `use_cache=False` runs transformers' full forward over the whole sequence
every step (the reference the cache is checked against). Each image draws from its own seeded
generator, so a (pose, seed) pair gives the same codes in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.progress import track
from transformers import GPT2Config, GPT2LMHeadModel

from posedraw.devices import inference_autocast
from posedraw.errors import ConfigError, PosedrawError, SamplingError
from posedraw.models.code_conditioning import CodePoseEncoder, input_embeddings, placed_maps
from posedraw.models.guidance import Branch, GuidanceScales
from posedraw.models.incremental_gpt2 import IncrementalGPT2
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
    pose_maps: bool = False  # pose maps added along the codes (models/code_conditioning.py)
    max_tags: int = 0  # tag tokens before the pose (0: no text; set from the data with text.kind tags)
    num_tags: int = 0  # the tag vocabulary's size (set from the data)

    @property
    def num_positions(self) -> int:
        return self.max_tags + NUM_JOINTS + self.grid * self.grid

    @property
    def absent_token(self) -> int:
        return self.num_codes + self.pose_grid**2

    @property
    def null_token(self) -> int:
        return self.absent_token + 1

    def gpt2(self) -> GPT2Config:
        return GPT2Config(
            vocab_size=self.null_token + 1 + (self.num_tags + 1 if self.max_tags else 0),
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


def pose_encoder_for(config: TransformerConfig, null_pose: bool, tags: Sequence[str] = ()) -> CodePoseEncoder:
    """The pose encoder of a transformer of `config` (trained with pose dropout: `null_pose`; `tags` its
    tag vocabulary, `config.num_tags` of them)."""
    if len(tags) != config.num_tags:
        raise ConfigError(f"model.num_tags: {config.num_tags}, but {len(tags)} tags were given")
    return CodePoseEncoder(
        num_codes=config.num_codes, grid=config.grid, pose_grid=config.pose_grid, width=config.width,
        maps=config.pose_maps, null_pose=null_pose, tags=list(tags), max_tags=config.max_tags,
    )  # fmt: skip


@dataclass(frozen=True)
class Sampling:
    """How codes are drawn; the ranges users may set are the pipeline's options (pipelines/code_transformer.py)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    guidance: float = 1.0  # pose classifier-free guidance on logits (1 = off; needs a model trained with dropout)
    text_guidance: float = 1.0  # text guidance (models with tags)

    @property
    def scales(self) -> GuidanceScales:
        return GuidanceScales(self.guidance, self.text_guidance)


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
        drop[..., 0] = False  # and always the likeliest, even where top_p rounds to 0 in float32
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


class CodeSampler:
    """Draws code grids for poses (and prompts) from a trained GPT-2 and its pose encoder (module doc)."""

    def __init__(self, model: GPT2LMHeadModel, encoder: CodePoseEncoder) -> None:
        self.model, self.encoder = model.eval(), encoder.eval()
        grid = encoder.config.grid
        self.codes, self.num_codes = grid * grid, encoder.config.num_codes
        self.length = encoder.prefix_length + self.codes

    def _recomputed(self, sequence: torch.Tensor, pose_maps: torch.Tensor | None) -> torch.Tensor:
        """Last position's code logits from the whole sequence, without any cache (the reference)."""
        embeds = input_embeddings(self.model, sequence, pose_maps, self.encoder.prefix_length)
        # the LM head on the last position only (what `logits_to_keep=1` does in recent transformers, spelled
        # out so that every transformers version of the supported range does it)
        hidden = self.model.transformer(inputs_embeds=embeds, use_cache=False).last_hidden_state
        return self.model.lm_head(hidden[:, -1])[:, : self.num_codes].float()

    def _recomputed_ours(self, sequence: torch.Tensor, pose_maps: torch.Tensor | None) -> torch.Tensor:
        """The same logits from our own cached step run over the whole sequence with a fresh cache: the
        baseline that differs from cached sampling only in the cache (bench/transformer.py)."""
        added = placed_maps(pose_maps, sequence.shape[1], self.encoder.prefix_length)
        return IncrementalGPT2(self.model, sequence.shape[1], self.num_codes).logits(sequence, added)

    def _conditioning(self, poses: Sequence[Pose], branches: list[Branch], prompts, negatives, device):
        """Prefix ids and projected pose maps of every branch the guidance needs, stacked in branch order
        (pose-only models: [null | pose] when guided)."""
        batch = len(poses)
        pose, maps = self.encoder.pose_prefix(poses), self.encoder.maps(poses)
        texts = {}
        if self.encoder.takes_text:
            texts = {True: self.encoder.text_prefix(prompts), False: self.encoder.text_prefix(negatives)}
        prefixes, all_maps = [], []
        for with_pose, with_text in branches:
            ids = pose if with_pose else self.encoder.null_prefix(batch)
            prefixes.append(torch.cat([texts[with_text], ids], dim=1) if texts else ids)
            if maps is not None:
                all_maps.append(maps if with_pose else self.encoder.null_maps(batch))
        projected = self.encoder(torch.cat(all_maps)) if all_maps else None
        return torch.cat(prefixes).to(device), projected

    @torch.no_grad()
    def __call__(
        self,
        poses: Sequence[Pose],
        seeds: Sequence[int],
        sampling: Sampling | None = None,
        use_cache: bool = True,
        progress: bool = False,
        every: int | None = None,
        prompts: Sequence[str] | None = None,
        negatives: Sequence[str] | None = None,
        recompute: str = "transformers",
    ) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
        """(B, grid, grid) code indices, one grid per (pose, seed), and with `every` the codes drawn so far
        every `every` codes: [(count, (B, count) codes), ...]. Without the cache, every token recomputes the
        whole sequence with transformers' forward (`recompute="transformers"`) or our own step ("ours")."""
        recomputed = {"transformers": self._recomputed, "ours": self._recomputed_ours}[recompute]
        sampling = sampling or Sampling()
        self.encoder.check_guidance(sampling.guidance)
        if len(seeds) != len(poses):
            raise PosedrawError(f"seeds: expected one per pose ({len(poses)}), got {len(seeds)}")
        prompts, negatives = list(prompts or [""] * len(poses)), list(negatives or [""] * len(poses))
        device = next(self.model.parameters()).device
        branches = sampling.scales.branches(self.encoder.takes_text and any(prompts))
        prefix, pose_maps = self._conditioning(poses, branches, prompts, negatives, device)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        decoder = IncrementalGPT2(self.model, self.length, self.num_codes) if use_cache else None
        sequence = step_input = prefix
        codes, partial = [], []
        steps = track(range(self.codes), "sampling codes", disable=not progress, transient=True)
        with inference_autocast(device):
            for k in steps:
                if decoder is None:
                    logits = recomputed(sequence, pose_maps)
                else:
                    logits = decoder.logits(step_input, _added(pose_maps, k, step_input.shape[1]))
                logits = sampling.scales.combine(logits, branches)
                drawn = self._draw(logits, sampling, generators, k).to(device)
                codes.append(drawn)
                step_input = drawn.repeat(len(branches), 1)
                if decoder is None:
                    sequence = torch.cat([sequence, step_input], dim=1)
                if every and ((k + 1) % every == 0 or k + 1 == self.codes):
                    partial.append((k + 1, torch.cat(codes, dim=1)))
        grid = self.encoder.config.grid
        return torch.cat(codes, dim=1).view(len(poses), grid, grid), partial

    def _draw(
        self, logits: torch.Tensor, sampling: Sampling, generators: list[torch.Generator], k: int
    ) -> torch.Tensor:
        """(B, 1) codes from guided logits, each row from its own generator on the CPU so seeds agree
        across devices. Probabilities with inf or nan (the multinomial would fail on them deep inside torch)
        are a SamplingError naming the code; the check costs nothing extra, the probabilities are on the
        CPU already."""
        probs = filter_logits(logits, sampling).softmax(-1).cpu()
        if not torch.isfinite(probs).all():
            raise SamplingError(
                f"code {k + 1} of {self.codes}: the model produced non-finite values (inf or nan), so no image "
                "was made; try a lower --guidance or a higher --temperature"
            )
        return torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generators, strict=True)])


def _added(pose_maps: torch.Tensor | None, step: int, fed: int) -> torch.Tensor | None:
    """The pose-map vectors to add to the `fed` tokens of sampling step `step`: the prefix (step 0) gets the
    first code's maps on its last token; later steps feed one code and get the next code's maps."""
    if pose_maps is None:
        return None
    if step == 0:
        return F.pad(pose_maps[:, :1], (0, 0, fed - 1, 0))
    return pose_maps[:, step : step + 1]


__all__ = ["CodeSampler", "Sampling", "TransformerConfig", "build_transformer", "filter_logits", "pose_encoder_for"]
