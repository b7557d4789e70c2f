"""Import of original latent-diffusion keypoint checkpoints (CompVis / lxj616 layout) into a posedraw pipeline.

Structure comes from the original config, never from a list fitted to one file: block types from
`attention_resolutions` (downsampling factors), attention heads from `num_heads` or `num_head_channels`,
transformer depth, channel multipliers, the noise schedule and `scale_factor`. The UNet keys are renamed
with diffusers' own LDM conversion helper; the EMA weights are read by the original naming rule (the live
parameter name without dots under `model_ema.`). Every UNet tensor of the checkpoint must land in the
converted model, or the conversion stops naming the first one that did not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

from posedraw.compat.checkpoint import load_state_dict
from posedraw.compat.vq import convert_state_dict, first_stage_weights, vq_config_from_original
from posedraw.config import read_yaml
from posedraw.errors import CheckpointError
from posedraw.models.conditioning import LegacyPoseEncoder

UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."


def _params(original: dict[str, Any], origin: str) -> dict[str, Any]:
    try:
        return original["model"]["params"]
    except (KeyError, TypeError):
        raise CheckpointError(f"{origin}: expected a latent-diffusion config with model.params") from None


def unet_config_from_original(original: dict[str, Any], origin: str = "config") -> dict[str, Any]:
    """UNet2DConditionModel arguments equivalent to the original openaimodel UNet of the config."""
    params = _params(original, origin)
    try:
        unet = params["unet_config"]["params"]
        mult = list(unet["channel_mult"])
        channels = [unet["model_channels"] * m for m in mult]
        factors = [2**i for i in range(len(mult))]  # downsampling factor of each level
        attention = set(unet.get("attention_resolutions", []))
        if not unet.get("use_spatial_transformer", False):
            raise CheckpointError(f"{origin}: expected use_spatial_transformer: true (a cross-attention UNet)")
        head_channels = unet.get("num_head_channels", -1)
        if head_channels not in (-1, None):
            heads: list[int] = [c // head_channels for c in channels]
        else:
            heads = [int(unet["num_heads"])] * len(channels)
        depth = unet.get("transformer_depth", 1)
        return {
            "sample_size": int(unet["image_size"]),
            "in_channels": int(unet["in_channels"]),
            "out_channels": int(unet["out_channels"]),
            "down_block_types": ["CrossAttnDownBlock2D" if f in attention else "DownBlock2D" for f in factors],
            "up_block_types": ["CrossAttnUpBlock2D" if f in attention else "UpBlock2D" for f in reversed(factors)],
            "block_out_channels": channels,
            "layers_per_block": int(unet["num_res_blocks"]),
            # diffusers' historical name: this argument holds the number of heads of each block
            "attention_head_dim": heads,
            "cross_attention_dim": int(unet["context_dim"]),
            "transformer_layers_per_block": depth if isinstance(depth, int) else list(depth),
            "use_linear_projection": bool(unet.get("use_linear_in_transformer", False)),
            "norm_num_groups": 32,
            "norm_eps": 1e-5,
            "act_fn": "silu",
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "mid_block_type": "UNetMidBlock2DCrossAttn",
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{origin}: incomplete unet_config ({exc.__class__.__name__}: {exc})") from None


def scheduler_from_original(original: dict[str, Any], origin: str = "config") -> DDIMScheduler:
    """The original noise schedule and DDIM settings as a diffusers scheduler.

    The original "linear" schedule is linear in sqrt(beta) (diffusers "scaled_linear"); its DDIM uses
    leading spacing with offset 1 and alpha_prev = alpha_bar[0] at the last step (set_alpha_to_one=False).
    """
    params = _params(original, origin)
    schedule = params.get("beta_schedule", "linear")
    names = {"linear": "scaled_linear", "sqrt_linear": "linear"}
    if schedule not in names:
        raise CheckpointError(f"{origin}: beta_schedule {schedule!r} is not supported (expected linear or sqrt_linear)")
    parameterization = params.get("parameterization", "eps")
    return DDIMScheduler(
        num_train_timesteps=int(params.get("timesteps", 1000)),
        beta_start=float(params.get("linear_start", 0.00085)),
        beta_end=float(params.get("linear_end", 0.0120)),
        beta_schedule=names[schedule],
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type={"eps": "epsilon", "v": "v_prediction", "x0": "sample"}[parameterization],
    )


def _check_schedule(scheduler: DDIMScheduler, state: dict[str, torch.Tensor], origin: str) -> None:
    stored = state.get("alphas_cumprod")
    if stored is not None and not torch.allclose(stored.double(), scheduler.alphas_cumprod.double(), atol=1e-6):
        raise CheckpointError(f"{origin}: the config's noise schedule does not match the checkpoint's alphas_cumprod")


def _unet_source(state: dict[str, torch.Tensor], use_ema: bool, origin: str) -> dict[str, torch.Tensor]:
    """The UNet's tensors under `model.diffusion_model.` names (EMA shadows looked up by the dot-less rule)."""
    live = {k: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    if not live:
        raise CheckpointError(f"{origin}: no {UNET_PREFIX}* weights: not a latent-diffusion checkpoint")
    if not use_ema:
        return live
    ema = {}
    for key in live:
        shadow = EMA_PREFIX + key[len("model.") :].replace(".", "")
        if shadow not in state:
            raise CheckpointError(f"{origin}: no EMA weights ({shadow} missing); convert with --no-ema")
        ema[key] = state[shadow]
    return ema


def convert_unet(source: dict[str, torch.Tensor], config: dict[str, Any], origin: str) -> UNet2DConditionModel:
    unet = UNet2DConditionModel(**config)
    converted = convert_ldm_unet_checkpoint(source, unet.config)
    used = {id(t) for t in converted.values()}
    unused = [k for k, t in source.items() if id(t) not in used]
    if unused:
        raise CheckpointError(f"{origin}: UNet key {unused[0]!r} has no place in the model of this config")
    try:
        unet.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1] if "\n" in str(exc) else str(exc)
        raise CheckpointError(f"{origin}: the UNet weights do not fit the config ({first.strip()})") from None
    return unet.eval()


def scale_factor_of(original: dict[str, Any], state: dict[str, torch.Tensor]) -> float:
    """Latents are multiplied by this for diffusion (divided before decoding)."""
    if "scale_factor" in state:  # scale_by_std models store the value they measured
        return float(state["scale_factor"])
    return float(_params(original, "config").get("scale_factor", 1.0))


def convert_ldm_checkpoint(
    checkpoint: str | Path, config_path: str | Path, use_ema: bool = True, trust_checkpoint: bool = False
):
    """A KeypointLDMPipeline from an original keypoint latent-diffusion checkpoint and its config."""
    from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline

    origin = str(checkpoint)
    original = read_yaml(config_path)
    params = _params(original, str(config_path))
    if params.get("conditioning_key", "crossattn") != "crossattn":
        raise CheckpointError(f"{config_path}: conditioning_key {params['conditioning_key']!r}; expected crossattn")
    state = load_state_dict(checkpoint, trust_checkpoint)
    unet = convert_unet(
        _unet_source(state, use_ema, origin), unet_config_from_original(original, str(config_path)), origin
    )
    vq_config = vq_config_from_original(original, str(config_path))
    vq = convert_state_dict(first_stage_weights(state), vq_config, origin)
    vq.register_to_config(scaling_factor=scale_factor_of(original, state))
    scheduler = scheduler_from_original(original, str(config_path))
    _check_schedule(scheduler, state, origin)
    if unet.config.cross_attention_dim != 17:
        raise CheckpointError(
            f"{config_path}: context_dim {unet.config.cross_attention_dim}; the legacy keypoint encoder needs 17"
        )
    return KeypointLDMPipeline(unet=unet, vq=vq, scheduler=scheduler, pose_encoder=LegacyPoseEncoder())
