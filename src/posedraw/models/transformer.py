"""The pose-conditioned code transformer, top to bottom: its config, GPT-2's forward over a code sequence
(whole, for training, or a few tokens at a time on a KV cache, for sampling) and the sampling loop.

Sequence: `max_tags` tag tokens (models trained with tags), 17 pose tokens, then the h*w code indices in
raster order. Vocabulary, one embedding table in separate ranges (the codes never share ids with the pose,
unlike the original taming set-up):
  [0, num_codes)                         the VQ's code indices
  num_codes + cell                       joint at grid cell `cell` (pose_grid x pose_grid over the image)
  num_codes + pose_grid**2               the joint is absent
  num_codes + pose_grid**2 + 1           the null pose (pose dropout; classifier-free guidance)
  then one id per tag and a "no tag" id  (models trained with tags)
Which joint a prefix token describes is its position (0..16), learned by GPT-2's position embeddings.
Pose maps (models/code_conditioning.py) are added to the input embeddings along the codes. Only code
logits are ever used: training takes cross-entropy over the code range, sampling never draws a pose id.

The weights are transformers' `GPT2LMHeadModel` (it saves, loads and shares them); `CodeGPT` runs them. Its
`forward` (the whole sequence, causal) and `forward_with_past` (new tokens after cached keys and values) go
through the same layer code, as taming's mingpt keeps `forward` and `forward_with_past` in one class. The
cached step is posedraw's own, not transformers' cached forward, because at small sizes that one is mostly
Python around little arithmetic (module calls, a cache grown by concatenation, mask building); this one
reads the parameters once and writes one preallocated key/value buffer per layer in place
(bench/results/transformer.json measures it).

Sampling feeds the prefix once and then one token at a time, so neither the prefix nor earlier codes are
recomputed; `use_cache=False` runs `forward` over the whole sequence for every code (the reference the
cache is checked against). Each image draws from its own generator on the model's device, so a (pose, seed)
pair gives the same codes on that device in any batch; a step never waits for the device (non-finite
values are noted there and read once, after the last code).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.progress import track
from transformers import GPT2Config, GPT2LMHeadModel

from posedraw.devices import inference_autocast
from posedraw.errors import CheckpointError, ConfigError
from posedraw.models.code_conditioning import CodePoseEncoder, placed_maps
from posedraw.models.compile import StaticStep, static_step
from posedraw.models.diffusion_math import draw_categorical, filter_logits
from posedraw.models.guidance import Branch, GuidanceScales
from posedraw.models.nonfinite import FirstNonFinite
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


# ---- GPT-2's forward, whole or on a KV cache ---------------------------------------------------------------

# GPT-2 variants CodeGPT does not implement; all are off in the configs posedraw builds.
_UNSUPPORTED = {
    "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
    "scale_attn_weights": (True,),
    "scale_attn_by_inverse_layer_idx": (False,),
    "reorder_and_upcast_attn": (False,),
    "add_cross_attention": (False,),
}


def _check_supported(model: GPT2LMHeadModel) -> None:
    """posedraw builds none of these variants, so one can only come from a model folder's config.json."""
    for field, allowed in _UNSUPPORTED.items():
        value = getattr(model.config, field, allowed[0])
        if value not in allowed:
            raise CheckpointError(f"transformer/config.json {field}: expected {allowed[0]!r}, got {value!r}")


class KVCache:
    """Every layer's keys and values for `length` positions, allocated on first use (in the dtype autocast
    gives the keys) and written in place, so a step never copies what came before."""

    def __init__(self, length: int) -> None:
        self.length, self.filled = length, 0
        self.layers: list[torch.Tensor] = []  # per layer: (2, B, heads, length, head_dim)

    def extend(self, layer: int, keys_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Writes the new (2, B, heads, t, head_dim) keys and values after the cached ones; returns all so far."""
        if len(self.layers) == layer:
            shape = (*keys_values.shape[:3], self.length, keys_values.shape[-1])
            self.layers.append(keys_values.new_empty(shape))
        end = self.filled + keys_values.shape[3]
        cached = self.layers[layer][:, :, :, :end]
        cached[:, :, :, self.filled :] = keys_values
        return cached[0], cached[1]


def _attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, dropout: float) -> torch.Tensor:
    """Causal attention of the last `query` positions to all `keys` (the first ones may be cached)."""
    new, total = query.shape[2], keys.shape[2]
    if new == 1 or new == total:
        return F.scaled_dot_product_attention(query, keys, values, dropout_p=dropout, is_causal=new > 1)
    mask = torch.ones(new, total, dtype=torch.bool, device=query.device).tril(total - new)
    return F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, dropout_p=dropout)


class CodeGPT:
    """GPT-2's forward on the parameters of a `GPT2LMHeadModel` (read once, so a step is a few ops per layer:
    layer norm, addmm, tanh-GELU, scaled-dot-product attention), with logits for the first `vocabulary`
    entries only (the codes). Dropout as GPT-2 places it when the model is in training mode."""

    def __init__(self, model: GPT2LMHeadModel, vocabulary: int) -> None:
        _check_supported(model)
        config, body = model.config, model.transformer
        self.width, self.heads, self.eps = config.n_embd, config.n_head, config.layer_norm_epsilon
        self.training = model.training
        self.dropout = {"embd": config.embd_pdrop, "attn": config.attn_pdrop, "resid": config.resid_pdrop}
        self.embed, self.positions, self.final = body.wte.weight, body.wpe.weight, body.ln_f
        self.head = model.lm_head.weight[:vocabulary]
        self.layers = [
            (b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias, b.attn.c_proj.weight,
             b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias, b.mlp.c_fc.weight, b.mlp.c_fc.bias,
             b.mlp.c_proj.weight, b.mlp.c_proj.bias)
            for b in body.h
        ]  # fmt: skip

    def forward(self, ids: torch.Tensor, added: torch.Tensor | None = None, first: int = 0) -> torch.Tensor:
        """(B, T) ids, with (B, T, width) vectors added to their input embeddings (the pose maps) ->
        (B, T - first, vocabulary) logits of positions `first`.. (a negative `first` counts from the end)."""
        return F.linear(self._hidden(ids, added, None)[:, first:], self.head)

    def forward_with_past(self, ids: torch.Tensor, added: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        """(B, t) ids that follow those already in `cache` -> the last position's float32 logits (B, vocabulary)."""
        return F.linear(self._hidden(ids, added, cache)[:, -1], self.head).float()

    def _hidden(self, ids: torch.Tensor, added: torch.Tensor | None, cache: KVCache | None) -> torch.Tensor:
        batch, new = ids.shape
        start = cache.filled if cache is not None else 0
        x = F.embedding(ids, self.embed)
        if added is not None:
            x = x + added.to(x.dtype)
        x = self._drop(x + self.positions[start : start + new], "embd").reshape(batch * new, self.width)
        attn_dropout = self.dropout["attn"] if self.training else 0.0
        for index, (g1, b1, w_qkv, b_qkv, w_out, b_out, g2, b2, w_up, b_up, w_down, b_down) in enumerate(self.layers):
            qkv = torch.addmm(b_qkv, self._norm(x, g1, b1), w_qkv)  # GPT-2's Conv1D: x @ W + b
            qkv = qkv.view(batch, new, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            keys, values = (qkv[1], qkv[2]) if cache is None else cache.extend(index, qkv[1:])
            attended = _attend(qkv[0], keys, values, attn_dropout).transpose(1, 2).reshape(batch * new, self.width)
            x = x + self._drop(torch.addmm(b_out, attended, w_out), "resid")
            hidden = F.gelu(torch.addmm(b_up, self._norm(x, g2, b2), w_up), approximate="tanh")
            x = x + self._drop(torch.addmm(b_down, hidden, w_down), "resid")
        if cache is not None:
            cache.filled += new
        return self.final(x.view(batch, new, self.width))

    def _norm(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.layer_norm(x, (self.width,), weight, bias, self.eps)

    def _drop(self, x: torch.Tensor, where: str) -> torch.Tensor:
        return F.dropout(x, self.dropout[where], training=True) if self.training and self.dropout[where] else x


# ---- sampling -----------------------------------------------------------------------------------------------


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

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return filter_logits(logits, self.temperature, self.top_k, self.top_p).softmax(-1)


class CachedDecoder:
    """Next-code logits with the KV cache: the prefix once, then one code per step."""

    def __init__(self, gpt: CodeGPT, length: int, pose_maps: torch.Tensor | None) -> None:
        self.gpt, self.cache, self.pose_maps = gpt, KVCache(length), pose_maps

    def logits(self, fed: torch.Tensor, step: int) -> torch.Tensor:
        return self.gpt.forward_with_past(fed, _added(self.pose_maps, step, fed.shape[1]), self.cache)


class CompiledDecoder(CachedDecoder):
    """The prefix through the cached forward, then each code through the model's compiled fixed-shape step
    (models/compile.py): the same logits as `CachedDecoder` within float tolerance."""

    def __init__(self, gpt: CodeGPT, length: int, pose_maps: torch.Tensor | None, step: StaticStep) -> None:
        super().__init__(gpt, length, pose_maps)
        self.step = step
        self.static: tuple[torch.Tensor, torch.Tensor] | None = None  # (position, cache) after the prefix

    def logits(self, fed: torch.Tensor, step: int) -> torch.Tensor:
        if self.static is None:
            logits = super().logits(fed, step)
            cache = torch.stack(self.cache.layers)  # (layers, 2, B, heads, length, head_dim)
            # the positions not yet written hold whatever memory was there: a NaN in them would reach the
            # step's attention through its zero weights (0 * NaN), so they start as zeros
            cache[:, :, :, :, self.cache.filled :].zero_()
            self.static = (torch.tensor(self.cache.filled, device=cache.device), cache)
            return logits
        return self.step(fed, _added(self.pose_maps, step, 1), *self.static)


class RecomputingDecoder:
    """Next-code logits from the whole sequence so far, every step (no cache): the reference the cache is
    checked against. `forward(ids, added)` gives (B, T', vocabulary) logits whose last row is the next code's."""

    def __init__(self, forward: Callable, pose_maps: torch.Tensor | None, prefix_length: int) -> None:
        self.forward, self.pose_maps, self.prefix_length = forward, pose_maps, prefix_length
        self.sequence: torch.Tensor | None = None

    def logits(self, fed: torch.Tensor, step: int) -> torch.Tensor:
        self.sequence = fed if self.sequence is None else torch.cat([self.sequence, fed], dim=1)
        added = placed_maps(self.pose_maps, self.sequence.shape[1], self.prefix_length)
        return self.forward(self.sequence, added)[:, -1].float()


class CodeSampler:
    """Draws code grids for poses (and prompts) from a trained GPT-2 and its pose encoder (module doc)."""

    def __init__(self, model: GPT2LMHeadModel, encoder: CodePoseEncoder, compiled: bool = False) -> None:
        """`compiled`: each code through torch.compile'd code (models/compile.py; off by default)."""
        self.model, self.encoder, self.compiled = model.eval(), encoder.eval(), compiled
        grid = encoder.config.grid
        self.codes, self.num_codes = grid * grid, encoder.config.num_codes
        self.length = encoder.prefix_length + self.codes
        _check_pair(model.config, encoder, self.length)

    def decoder(self, use_cache: bool, pose_maps: torch.Tensor | None):
        """How next-code logits are computed: with the KV cache, or the whole sequence every step."""
        gpt = CodeGPT(self.model, self.num_codes)
        if use_cache and self.compiled:
            step = static_step(self.model, lambda: CodeGPT(self.model, self.num_codes))
            return CompiledDecoder(step.gpt, self.length, pose_maps, step)
        if use_cache:
            return CachedDecoder(gpt, self.length, pose_maps)
        return RecomputingDecoder(lambda ids, added: gpt.forward(ids, added, -1), pose_maps, self.encoder.prefix_length)

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
    ) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
        """(B, grid, grid) code indices, one grid per (pose, seed), and with `every` the codes drawn so far
        every `every` codes: [(count, (B, count) codes), ...]. The pipeline has checked the options and seeds."""
        sampling = sampling or Sampling()
        self.encoder.check_guidance(sampling.guidance)
        prompts, negatives = list(prompts or [""] * len(poses)), list(negatives or [""] * len(poses))
        device = next(self.model.parameters()).device
        # a negative alone is guided away from (the prompt then empty), never drawn as the call's one text
        branches = sampling.scales.branches(self.encoder.takes_text and any([*prompts, *negatives]))
        prefix, pose_maps = self._conditioning(poses, branches, prompts, negatives, device)
        generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds]
        decoder, nonfinite = self.decoder(use_cache, pose_maps), FirstNonFinite(device)
        fed, codes, partial = prefix, [], []
        with inference_autocast(device):
            for k in track(range(self.codes), "sampling codes", disable=not progress, transient=True):
                probs = sampling.probabilities(sampling.scales.combine(decoder.logits(fed, k), branches))
                nonfinite.note(k, probs)
                codes.append(draw_categorical(probs, generators))
                fed = codes[-1].repeat(len(branches), 1)
                if every and ((k + 1) % every == 0 or k + 1 == self.codes):
                    partial.append((k + 1, torch.cat(codes, dim=1)))
        nonfinite.check(f"code {{}} of {self.codes}", "try a lower --guidance or a higher --temperature")
        grid = self.encoder.config.grid
        return torch.cat(codes, dim=1).view(len(poses), grid, grid), partial


def _check_pair(config: GPT2Config, encoder: CodePoseEncoder, length: int) -> None:
    """A transformer and a pose encoder that do not belong together (a model folder put together from two)
    is a CheckpointError before sampling, rather than an index error inside it."""
    if config.n_positions < length:
        raise CheckpointError(
            f"transformer/config.json n_positions: expected at least {length} (the pose encoder's prefix of "
            f"{encoder.prefix_length} and {encoder.config.grid}x{encoder.config.grid} codes), got {config.n_positions}"
        )
    ids = encoder.no_tag_token + 1 if encoder.takes_text else encoder.null_token + 1
    if config.vocab_size < ids:
        raise CheckpointError(f"transformer/config.json vocab_size: expected at least {ids} (the pose encoder's "
                              f"ids), got {config.vocab_size}")  # fmt: skip


def _added(pose_maps: torch.Tensor | None, step: int, fed: int) -> torch.Tensor | None:
    """The pose-map vectors to add to the `fed` tokens of sampling step `step`: the prefix (step 0) gets the
    first code's maps on its last token; later steps feed one code and get the next code's maps."""
    if pose_maps is None:
        return None
    if step == 0:
        return F.pad(pose_maps[:, :1], (0, 0, fed - 1, 0))
    return pose_maps[:, step : step + 1]


__all__ = [
    "CachedDecoder", "CodeGPT", "CodeSampler", "CompiledDecoder", "KVCache", "RecomputingDecoder", "Sampling",
    "TransformerConfig", "build_transformer", "pose_encoder_for",
]  # fmt: skip
