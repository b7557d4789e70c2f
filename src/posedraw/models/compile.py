"""`torch.compile` for the two hot loops: the diffusion UNet and the code transformer's one-code step.

Both are switches, off by default: compiling costs tens of seconds (minutes on a small CPU) before the first
result, and only bench/gpu_perf.py's on/off rows on a GPU can say whether it pays (docs/speed.md). On CUDA
the compiled code also runs as CUDA graphs (mode "reduce-overhead"): one launch for a whole step instead of
hundreds of small kernels, which is what a small model's step is bound by. Shapes are static (`dynamic=False`):
a sampling loop calls the network with the same shapes every step, so it compiles once.

The UNet is compiled in place (`nn.Module.compile`): its state dict, `save_pretrained` and every caller of
`denoise` stay as they are. The transformer's step needs fixed shapes, which a cache that grows by one
position per code does not give: `StaticStep` attends over the whole preallocated cache with a mask of the
positions filled so far, and returns the new keys and values instead of writing them (a compiled function
that mutates its inputs cannot be a CUDA graph); one eager `index_copy_` per step writes them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


def compile_mode(device: torch.device | str) -> str:
    """CUDA graphs on CUDA; plain inductor code elsewhere (CUDA graphs exist only there)."""
    return "reduce-overhead" if torch.device(device).type == "cuda" else "default"


def compile_unet(unet: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """Compiles `unet` in place for training and sampling alike (its weights and state dict unchanged)."""
    unet.compile(mode=compile_mode(device), dynamic=False)
    return unet


class StaticStep:
    """The cached transformer step for one new token per image, with fixed shapes (module docstring); one per
    model (`static_step`), so that later drawings reuse its compiled code (a new batch size compiles anew).
    `gpt` is the model's `CodeGPT`."""

    def __init__(self, gpt) -> None:
        self.gpt = gpt
        self.compiled = torch.compile(self._logits_and_keys, mode=compile_mode(gpt.embed.device), dynamic=False)

    def __call__(
        self, ids: torch.Tensor, added: torch.Tensor | None, position: torch.Tensor, cache: torch.Tensor
    ) -> torch.Tensor:
        """(B, 1) ids (with (B, 1, width) added vectors) at `position` (a 0-d long tensor on the device, advanced
        in place, so no step reads or sends a number) after the keys and values in `cache`, (layers, 2, B,
        heads, length, head_dim), which gets this token's -> the next code's float32 logits (B, vocabulary)."""
        logits, keys_values = self.compiled(ids, added, position, cache)
        cache.index_copy_(4, position.view(1), keys_values.to(cache.dtype))
        position += 1
        return logits

    def _logits_and_keys(
        self, ids: torch.Tensor, added: torch.Tensor | None, position: torch.Tensor, cache: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gpt, batch = self.gpt, ids.shape[0]
        x = F.embedding(ids, gpt.embed) + gpt.positions.index_select(0, position.view(1))
        if added is not None:
            x = x + added.to(x.dtype)
        x = x.reshape(batch, gpt.width)
        # the cached positions before this one, then this token itself
        before = torch.arange(cache.shape[4], device=cache.device) < position
        mask = torch.cat([before, before.new_ones(1)])[None]  # (1 query, cache + 1 keys)
        new_keys_values = []
        for index, (g1, b1, w_qkv, b_qkv, w_out, b_out, g2, b2, w_up, b_up, w_down, b_down) in enumerate(gpt.layers):
            qkv = torch.addmm(b_qkv, gpt._norm(x, g1, b1), w_qkv).view(batch, 1, 3, gpt.heads, -1)
            qkv = qkv.permute(2, 0, 3, 1, 4)
            new_keys_values.append(qkv[1:])
            keys = torch.cat([cache[index, 0].to(qkv.dtype), qkv[1]], dim=2)
            values = torch.cat([cache[index, 1].to(qkv.dtype), qkv[2]], dim=2)
            attended = F.scaled_dot_product_attention(qkv[0], keys, values, attn_mask=mask)
            x = x + torch.addmm(b_out, attended.reshape(batch, gpt.width), w_out)
            hidden = F.gelu(torch.addmm(b_up, gpt._norm(x, g2, b2), w_up), approximate="tanh")
            x = x + torch.addmm(b_down, hidden, w_down)
        logits = F.linear(gpt.final(x), gpt.head).float()
        return logits, torch.stack(new_keys_values)


_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def static_step(model: torch.nn.Module, make_gpt: Callable[[], Any]) -> StaticStep:
    """The compiled step of `model` (a GPT2LMHeadModel), made on first use with `make_gpt()` (its CodeGPT)."""
    if model not in _STEPS:
        _STEPS[model] = StaticStep(make_gpt())
    return _STEPS[model]
