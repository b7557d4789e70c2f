"""The diffusion UNet of new posedraw models: a typed config in the original's terms -> diffusers
UNet2DConditionModel (the same network family the original checkpoints convert into), and the one call
that runs it on a pose conditioning (`denoise`), for training and sampling alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from diffusers import UNet2DConditionModel

if TYPE_CHECKING:
    from posedraw.models.conditioning import PoseConditioning


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
        # a ValueError here is reported by the config loader as one ConfigError naming the `unet` section
        widths = [self.model_channels * m for m in self.channel_mult]
        if self.num_head_channels < 1 or any(w % self.num_head_channels for w in widths):
            raise ValueError(f"model_channels x channel_mult: expected multiples of num_head_channels "
                             f"({self.num_head_channels}), got {', '.join(map(str, widths))}")  # fmt: skip


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


def denoise(unet: UNet2DConditionModel, x: torch.Tensor, t: torch.Tensor, cond: PoseConditioning) -> torch.Tensor:
    """The UNet's prediction (eps, v or x0, as it was trained) for noisy latents `x` at timesteps `t` under
    `cond`, as CompVis's `apply_model(x, t, cond)`: the pose maps (if any) concatenated to the input
    channels, the pose and text tokens as cross-attention context, the pooled text (if any) as the class
    embedding. Training's loss and every sampler call this one function, so they cannot disagree on how
    the conditioning enters the network."""
    model_input = x if cond.maps is None else torch.cat([x, cond.maps.to(x.dtype)], dim=1)
    return unet(model_input, t, encoder_hidden_states=cond.context, class_labels=cond.pooled).sample


__all__ = ["UNetConfig", "build_unet", "denoise"]
