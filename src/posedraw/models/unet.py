"""The diffusion UNet of new posedraw models: a typed config in the original's terms -> diffusers
UNet2DConditionModel (the same network family the original checkpoints convert into)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DConditionModel


@dataclass(frozen=True)
class UNetConfig:
    sample_size: int = 16  # latent side
    latent_channels: int = 3
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (2, 4)  # downsampling factors with attention, as in the original
    num_head_channels: int = 32
    transformer_depth: int = 1
    context_dim: int = 64
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if any(self.model_channels * m % self.num_head_channels for m in self.channel_mult):
            raise ValueError("model_channels * channel_mult must be divisible by num_head_channels")


def build_unet(config: UNetConfig, extra_in_channels: int = 0, pooled_dim: int = 0) -> UNet2DConditionModel:
    """A UNet for `config`; `extra_in_channels` are pose maps concatenated to the latent input; `pooled_dim`
    > 0 adds a projection of a (B, pooled_dim) vector to the timestep embedding (diffusers' "projection"
    class embedding), zero-initialized so that a model fine-tuned with it starts as the one without."""
    channels = [config.model_channels * m for m in config.channel_mult]
    factors = [2**i for i in range(len(channels))]
    attention = set(config.attention_resolutions)
    unet = UNet2DConditionModel(
        sample_size=config.sample_size,
        in_channels=config.latent_channels + extra_in_channels,
        out_channels=config.latent_channels,
        down_block_types=["CrossAttnDownBlock2D" if f in attention else "DownBlock2D" for f in factors],
        up_block_types=["CrossAttnUpBlock2D" if f in attention else "UpBlock2D" for f in reversed(factors)],
        block_out_channels=channels,
        layers_per_block=config.num_res_blocks,
        attention_head_dim=[c // config.num_head_channels for c in channels],  # diffusers' name for head count
        cross_attention_dim=config.context_dim,
        transformer_layers_per_block=config.transformer_depth,
        norm_num_groups=min(32, config.model_channels),
        class_embed_type="projection" if pooled_dim else None,
        projection_class_embeddings_input_dim=pooled_dim or None,
    )
    if pooled_dim:
        torch.nn.init.zeros_(unet.class_embedding.linear_2.weight)
        torch.nn.init.zeros_(unet.class_embedding.linear_2.bias)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet
