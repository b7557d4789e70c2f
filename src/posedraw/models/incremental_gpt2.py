"""Incremental GPT-2 forward over a preallocated KV cache: the code transformer's per-token sampling step.

Why not transformers' own cached forward: at the toy size (4 layers, 128 wide) one cached token took
1.9 ms there, mostly Python around little arithmetic (module calls, a cache grown by concatenation, mask
building), so sampling with its cache was only 3.2x faster than recomputing the sequence
(bench/transformer.py, 2026-11-25). This step reads the same `GPT2LMHeadModel` parameters and calls the
same functional ops (layer norm, addmm, tanh-GELU, scaled-dot-product attention) with one key/value
buffer per layer, allocated for the whole sequence and written in place: about 0.37 ms a token at the
toy size. Its logits equal the model's full forward to float rounding, and sampling with it draws the
same codes as transformers' uncached forward (tests/test_transformer.py). Training, saving and that
uncached reference stay on transformers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel

from posedraw.errors import ConfigError

# GPT-2 variants the step does not implement; all are off in the configs posedraw builds.
_UNSUPPORTED = {
    "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
    "scale_attn_weights": (True,),
    "scale_attn_by_inverse_layer_idx": (False,),
    "reorder_and_upcast_attn": (False,),
    "add_cross_attention": (False,),
}


def _check(model: GPT2LMHeadModel) -> None:
    for field, allowed in _UNSUPPORTED.items():
        value = getattr(model.config, field, allowed[0])
        if value not in allowed:
            raise ConfigError(f"transformer config {field}: expected {allowed[0]!r} for cached sampling, got {value!r}")


class IncrementalGPT2:
    """Feeds tokens to a GPT-2 a few at a time, keeping every layer's keys and values.

    `logits(ids, added)` takes (B, t) ids that follow the ones fed before: either the whole prefix at once
    (nothing fed yet) or one token per row, and optionally (B, t, width) vectors added to their input
    embeddings (the transformer's pose maps). It returns the last position's logits for the first
    `vocabulary` entries (B, vocabulary) as float32.
    """

    def __init__(self, model: GPT2LMHeadModel, length: int, vocabulary: int) -> None:
        _check(model)
        config, body = model.config, model.transformer
        self.width, self.heads, self.eps, self.length = config.n_embd, config.n_head, config.layer_norm_epsilon, length
        self.embed, self.positions, self.final = body.wte.weight, body.wpe.weight, body.ln_f
        self.head = model.lm_head.weight[:vocabulary]
        self.layers = [
            (b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias, b.attn.c_proj.weight,
             b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias, b.mlp.c_fc.weight, b.mlp.c_fc.bias,
             b.mlp.c_proj.weight, b.mlp.c_proj.bias)
            for b in body.h
        ]  # fmt: skip
        self.cache: list[torch.Tensor] = []  # per layer: keys and values, (2, B, heads, length, head_dim)
        self.filled = 0

    def _norm(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.layer_norm(x, (self.width,), weight, bias, self.eps)

    def _store(self, layer: int, keys_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Writes the new (2, B, heads, t, head_dim) keys and values after the cached ones; returns all so far."""
        if len(self.cache) == layer:  # allocated on first use, in the dtype autocast gives the keys
            shape = (*keys_values.shape[:3], self.length, keys_values.shape[-1])
            self.cache.append(keys_values.new_empty(shape))
        end = self.filled + keys_values.shape[3]
        cached = self.cache[layer][:, :, :, :end]
        cached[:, :, :, self.filled :] = keys_values
        return cached[0], cached[1]

    def logits(self, ids: torch.Tensor, added: torch.Tensor | None = None) -> torch.Tensor:
        batch, new = ids.shape
        if new > 1 and self.filled:
            raise ValueError("feed several tokens only as the prefix, before any other")
        if self.filled + new > self.length:
            raise ValueError(f"sequence longer than the {self.length} positions allocated")
        start = self.filled
        x = F.embedding(ids, self.embed) + self.positions[start : start + new]
        if added is not None:
            x = x + added.to(x.dtype)
        x = x.reshape(batch * new, self.width)
        for index, (g1, b1, w_qkv, b_qkv, w_out, b_out, g2, b2, w_up, b_up, w_down, b_down) in enumerate(self.layers):
            qkv = torch.addmm(b_qkv, self._norm(x, g1, b1), w_qkv)  # GPT-2's Conv1D: x @ W + b
            qkv = qkv.view(batch, new, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            keys, values = self._store(index, qkv[1:])
            query = qkv[0]
            attended = F.scaled_dot_product_attention(query, keys, values, is_causal=new > 1)
            x = x + torch.addmm(b_out, attended.transpose(1, 2).reshape(batch * new, self.width), w_out)
            hidden = F.gelu(torch.addmm(b_up, self._norm(x, g2, b2), w_up), approximate="tanh")
            x = x + torch.addmm(b_down, hidden, w_down)
        self.filled += new
        last = self.final(x.view(batch, new, self.width)[:, -1])
        return F.linear(last, self.head).float()


__all__ = ["IncrementalGPT2"]
