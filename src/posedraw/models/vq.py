"""VQGAN first stages (f4 / f8 / f16) as diffusers `VQModel`s, described by a typed `VQConfig`.

The config speaks the taming-transformers language (ch, ch_mult, attn_resolutions, ...) so the original
configs translate one to one; `build_vq` turns it into a diffusers VQModel whose layers match the
original network exactly (same blocks, attention placement, asymmetric downsampling padding, quantizer
with the original "legacy" commitment-loss placement).

The space the diffusion model works in is the continuous latent *before* quantization (`encode`);
quantization happens only when decoding (`decode`), or explicitly (`quantize`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import VQModel

from posedraw.errors import CheckpointError
from posedraw.io import atomic_dir

VQ_SUBFOLDER = "vq"


@dataclass(frozen=True)
class VQConfig:
    """Architecture of a VQGAN, in the original (taming-transformers `ddconfig`) terms.

    A value no network can be built from is a ValueError naming the field: the two readers of these values,
    `posedraw.config.from_dict` (YAML configs) and `compat.vq.vq_config_from_original` (original configs),
    turn it into one ConfigError or CheckpointError naming the file."""

    resolution: int = 256
    in_channels: int = 3
    out_channels: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    z_channels: int = 3
    embed_dim: int = 3
    n_embed: int = 8192
    norm_num_groups: int = 32

    def __post_init__(self) -> None:
        if not self.ch_mult or any(m <= 0 for m in self.ch_mult):
            raise ValueError(f"ch_mult: expected a non-empty list of positive multipliers, got {list(self.ch_mult)}")
        if any((self.ch * m) % self.norm_num_groups for m in self.ch_mult):
            raise ValueError(
                f"ch: expected ch x every ch_mult to be a multiple of norm_num_groups ({self.norm_num_groups}), "
                f"got ch {self.ch} with ch_mult {list(self.ch_mult)}"
            )

    @property
    def downsampling(self) -> int:
        """The spatial factor f: 4, 8, 16."""
        return 2 ** (len(self.ch_mult) - 1)

    def level_has_attention(self, level: int) -> bool:
        """Whether resolution level `level` (0 = full resolution) has attention after its res blocks."""
        return self.resolution // 2**level in self.attn_resolutions


def build_vq(config: VQConfig) -> VQModel:
    """A fresh diffusers VQModel with the architecture of `config`."""
    levels = range(len(config.ch_mult))
    down = tuple("AttnDownEncoderBlock2D" if config.level_has_attention(i) else "DownEncoderBlock2D" for i in levels)
    # the decoder's blocks run from the lowest resolution up
    up = tuple(
        "AttnUpDecoderBlock2D" if config.level_has_attention(i) else "UpDecoderBlock2D" for i in reversed(levels)
    )
    return VQModel(
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(config.ch * m for m in config.ch_mult),
        layers_per_block=config.num_res_blocks,
        act_fn="silu",
        latent_channels=config.z_channels,
        sample_size=config.resolution,
        num_vq_embeddings=config.n_embed,
        norm_num_groups=config.norm_num_groups,
        vq_embed_dim=config.embed_dim,
        scaling_factor=1.0,
        mid_block_add_attention=True,
    )


def encode(vq: VQModel, images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (B, 3, H, W) -> continuous pre-quantization latents (B, embed_dim, H/f, W/f)."""
    return vq.encode(images).latents


def quantize(vq: VQModel, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codebook vectors (straight-through gradient) and their indices (B, h, w)."""
    quant, _, (_, _, indices) = vq.quantize(latents)
    batch, _, height, width = latents.shape
    return quant, indices.reshape(batch, height, width)


def decode(vq: VQModel, latents: torch.Tensor) -> torch.Tensor:
    """Continuous latents -> images in about [-1, 1] (quantizes first, as the original does)."""
    return vq.decode(latents).sample


def decode_codes(vq: VQModel, indices: torch.Tensor) -> torch.Tensor:
    """Code indices (B, h, w) -> images."""
    batch, height, width = indices.shape
    quant = vq.quantize.get_codebook_entry(indices.reshape(-1), (batch, height, width, vq.config.vq_embed_dim))
    return vq.decode(quant, force_not_quantize=True).sample


def latents_from_codes(vq: VQModel, indices: torch.Tensor) -> torch.Tensor:
    """Code indices (B, h, w) -> their codebook vectors (B, C, h, w): a latent that decodes to those codes."""
    return vq.quantize.embedding(indices.long()).permute(0, 3, 1, 2).contiguous()


def downsampling_factor(vq: VQModel) -> int:
    return 2 ** (len(vq.config.block_out_channels) - 1)


def codebook_range(vq: VQModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel min and max of the codebook: the box latents are kept in during tuning."""
    weight = vq.quantize.embedding.weight.detach()
    return weight.min(dim=0).values, weight.max(dim=0).values


def save_vq(vq: VQModel, folder: str | Path, metadata: dict | None = None) -> Path:
    """Write a model folder: `<folder>/vq/` (config.json + safetensors) and `<folder>/posedraw.json`."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        vq.save_pretrained(tmp / VQ_SUBFOLDER, safe_serialization=True)
        info = {"kind": "vq", **(metadata or {})}
        (tmp / "posedraw.json").write_text(json.dumps(info, indent=1) + "\n")
    return folder


def vq_folder(folder: str | Path) -> Path:
    """The folder holding the VQ of a model folder (a VQ folder or a pipeline folder with a `vq/`
    component); refuses a folder without one, before anything is loaded."""
    folder = Path(folder)
    for candidate in (folder / VQ_SUBFOLDER, folder):
        if (candidate / "config.json").is_file():
            return candidate
    raise CheckpointError(f"{folder}: expected a model folder with vq/config.json (made by convert or train vq)")


def load_vq(folder: str | Path, device: str | torch.device = "cpu") -> VQModel:
    """Load the VQ of a model folder (a VQ folder or a pipeline folder with a `vq/` component)."""
    from posedraw.models.files import READ_ERRORS, check_component_files, read_failure

    candidate = vq_folder(folder)
    check_component_files(candidate.parent, [candidate.name])
    try:
        vq = VQModel.from_pretrained(candidate, use_safetensors=True)
    except READ_ERRORS as exc:
        raise read_failure(candidate, "VQ model", exc) from None
    return vq.to(device).eval()
