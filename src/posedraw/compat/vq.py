"""Import of VQGAN weights from taming-transformers and latent-diffusion checkpoints into a diffusers VQModel.

Keys are mapped by rule from the original module structure, never by a list fitted to one file:
`encoder.down.{level}.block.{i}` -> `encoder.down_blocks.{level}.resnets.{i}`, the decoder's `up.{level}`
-> `up_blocks.{levels - 1 - level}` (diffusers counts from the lowest resolution), attention blocks'
1x1 convolutions -> linear layers, and so on. Every source key is mapped or deliberately ignored
(training-loss modules); anything else, a missing target or a shape mismatch is an error naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from diffusers import VQModel

from posedraw.compat.checkpoint import load_state_dict
from posedraw.config import read_yaml
from posedraw.errors import CheckpointError
from posedraw.models.vq import VQConfig, build_vq

LDM_FIRST_STAGE_PREFIX = "first_stage_model."
IGNORED_PREFIXES = ("loss.",)  # LPIPS + discriminator of the training loss; not part of the model

_RESNET_PARTS = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "nin_shortcut": "conv_shortcut",
}
_ATTENTION_PARTS = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _resnet(prefix: str, rest: str) -> str:
    part, _, leaf = rest.partition(".")
    if part not in _RESNET_PARTS:
        raise KeyError(rest)
    return f"{prefix}.{_RESNET_PARTS[part]}.{leaf}"


def _attention(prefix: str, rest: str) -> str:
    part, _, leaf = rest.partition(".")
    if part not in _ATTENTION_PARTS:
        raise KeyError(rest)
    return f"{prefix}.{_ATTENTION_PARTS[part]}.{leaf}"


@lru_cache(maxsize=8)
def _rules(levels: int) -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]:
    def up(level: str) -> int:
        return levels - 1 - int(level)

    return [
        (re.compile(r"(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)"), lambda m: m[0]),
        (re.compile(r"(encoder|decoder)\.norm_out\.(weight|bias)"), lambda m: f"{m[1]}.conv_norm_out.{m[2]}"),
        (re.compile(r"encoder\.down\.(\d+)\.block\.(\d+)\.(.+)"),
         lambda m: _resnet(f"encoder.down_blocks.{m[1]}.resnets.{m[2]}", m[3])),
        (re.compile(r"encoder\.down\.(\d+)\.attn\.(\d+)\.(.+)"),
         lambda m: _attention(f"encoder.down_blocks.{m[1]}.attentions.{m[2]}", m[3])),
        (re.compile(r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)"),
         lambda m: f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"),
        (re.compile(r"decoder\.up\.(\d+)\.block\.(\d+)\.(.+)"),
         lambda m: _resnet(f"decoder.up_blocks.{up(m[1])}.resnets.{m[2]}", m[3])),
        (re.compile(r"decoder\.up\.(\d+)\.attn\.(\d+)\.(.+)"),
         lambda m: _attention(f"decoder.up_blocks.{up(m[1])}.attentions.{m[2]}", m[3])),
        (re.compile(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)"),
         lambda m: f"decoder.up_blocks.{up(m[1])}.upsamplers.0.conv.{m[2]}"),
        (re.compile(r"(encoder|decoder)\.mid\.block_([12])\.(.+)"),
         lambda m: _resnet(f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}", m[3])),
        (re.compile(r"(encoder|decoder)\.mid\.attn_1\.(.+)"),
         lambda m: _attention(f"{m[1]}.mid_block.attentions.0", m[2])),
        (re.compile(r"(quant_conv|post_quant_conv)\.(weight|bias)"), lambda m: m[0]),
        (re.compile(r"quantize\.embedding\.weight"), lambda m: m[0]),
    ]  # fmt: skip


def map_key(key: str, levels: int) -> str | None:
    """The diffusers name of an original VQGAN key, or None if no rule matches."""
    for pattern, target in _rules(levels):
        match = pattern.fullmatch(key)
        if match:
            try:
                return target(match)
            except KeyError:
                return None
    return None


def convert_state_dict(source: dict[str, torch.Tensor], config: VQConfig, origin: str = "checkpoint") -> VQModel:
    """A VQModel of `config` loaded with the original weights `source` (keys without prefix)."""
    model = build_vq(config)
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        if key.startswith(IGNORED_PREFIXES):
            continue
        target = map_key(key, len(config.ch_mult))
        if target is None:
            raise CheckpointError(f"{origin}: key {key!r} is not part of a VQGAN this converter knows")
        if target not in expected:
            raise CheckpointError(
                f"{origin}: key {key!r} has no place in the model of this config ({target}); does the config match?"
            )
        if tensor.ndim == 4 and expected[target].ndim == 2:  # attention 1x1 conv -> linear
            tensor = tensor[:, :, 0, 0]
        if tensor.shape != expected[target].shape:
            raise CheckpointError(
                f"{origin}: key {key!r} has shape {tuple(tensor.shape)}, the config expects "
                f"{tuple(expected[target].shape)}; does the config match?"
            )
        converted[target] = tensor
    missing = sorted(set(expected) - set(converted))
    if missing:
        raise CheckpointError(f"{origin}: no weights for {missing[0]} ({len(missing)} missing); does the config match?")
    model.load_state_dict(converted, strict=True)
    return model.eval()


def vq_config_from_original(config: Any, origin: str = "config") -> VQConfig:
    """VQConfig from a taming (`model.params.ddconfig`) or latent-diffusion (`first_stage_config`) config."""
    try:
        params = config["model"]["params"]
        if "first_stage_config" in params:
            params = params["first_stage_config"]["params"]
        dd = params["ddconfig"]
        if dd.get("double_z", False):
            raise CheckpointError(f"{origin}: ddconfig.double_z is true: a KL autoencoder, not a VQGAN")
        return VQConfig(
            resolution=int(dd["resolution"]),
            in_channels=int(dd["in_channels"]),
            out_channels=int(dd["out_ch"]),
            ch=int(dd["ch"]),
            ch_mult=tuple(int(m) for m in dd["ch_mult"]),
            num_res_blocks=int(dd["num_res_blocks"]),
            attn_resolutions=tuple(int(r) for r in dd.get("attn_resolutions") or ()),
            z_channels=int(dd["z_channels"]),
            embed_dim=int(params["embed_dim"]),
            n_embed=int(params["n_embed"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{origin}: expected a taming-transformers or latent-diffusion VQ config with model.params.ddconfig, "
            f"embed_dim and n_embed ({exc.__class__.__name__}: {exc})"
        ) from None


def first_stage_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VQGAN part of a checkpoint: `first_stage_model.*` of a latent-diffusion one, else everything."""
    if any(k.startswith(LDM_FIRST_STAGE_PREFIX) for k in state):
        return {k[len(LDM_FIRST_STAGE_PREFIX) :]: v for k, v in state.items() if k.startswith(LDM_FIRST_STAGE_PREFIX)}
    return state


def convert_vq_checkpoint(checkpoint: str | Path, config_path: str | Path, trust_checkpoint: bool = False) -> VQModel:
    """Load an original VQGAN (standalone or the first stage of an LDM) as a diffusers VQModel."""
    config = vq_config_from_original(read_yaml(config_path), str(config_path))
    state = load_state_dict(checkpoint, trust_checkpoint)
    return convert_state_dict(first_stage_weights(state), config, str(checkpoint))
