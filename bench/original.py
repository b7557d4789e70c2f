"""The original system's networks, built from the original code at posedraw's shipped sizes, for the benches
that compare the two (bench/vs_original.py, bench/gpu_perf.py).

The code comes from PyPI, installed by scripts/install_original.sh (bench-only, never a posedraw
dependency): `ldm` from stable-diffusion-sdkit 2.1.5 (the CompVis latent-diffusion UNet, DDPM/LatentDiffusion
and DDIM sampler, as carried on by Stable Diffusion 2) and `taming` from taming-transformers 0.0.1 (VQGAN,
its LPIPS + discriminator loss, minGPT and the conditional transformer's sampling loop). Only the modules
needed are imported. What is built, and how it matches the original set-up (lxj616's released keypoint LDM
config, taming's VQGAN and cond_transformer):

- keypoint LDM: `LatentDiffusion` with the openaimodel UNet (`num_heads: 8`, `legacy: false`, spatial
  transformer, `context_dim: 17`), the 17 keypoint grid tokens as one (B, 1, 17) float token (lxj616's
  DummyEncoder passes them through), the vq-f4 first stage as latent-diffusion's VQModelInterface (encode
  stops before quantization, decode quantizes first; that class is not in the package, so taming's VQModel
  is used the same way), EMA on (`LitEma`), AdamW.
- the CompVis code the original trained with checkpointed every transformer block (BasicTransformerBlock's
  `checkpoint=True` was not configurable), which Stable Diffusion 2's copy made a switch: it is turned on
  again here. Its attention computed q.k in the autocast dtype; SD2's copy upcasts to fp32 unless
  `_ATTN_PRECISION` says otherwise: set back to the original behaviour.
- vq-f4: taming's `VQModel` with `VQLPIPSWithDiscriminator` (Adam, betas 0.5 / 0.9, two optimizers).
- f16 transformer: taming's `Net2NetTransformer` around minGPT (codes and pose tokens share one vocabulary
  as in taming); its first and condition stages are placeholders, since `sample` runs only the GPT.

Shims (`install_shims`, a few lines each): taming's main.py and SD2's ddpm.py import
`pytorch_lightning.utilities.distributed.rank_zero_only`, gone from Lightning 2 (a module holding it is put
in sys.modules first; `pytorch_lightning` itself is aliased to `lightning.pytorch` where only the unified
package is installed); taming's LPIPS downloads its weights and torchvision's VGG16 at construction: both
get random weights here, no download (speed does not depend on the values; reports say so).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

MISSING = "the original code is not installed (scripts/install_original.sh)"
RANDOM_LPIPS = "taming's LPIPS and its VGG16 have random weights (no download; speed does not depend on them)"
ORIGINAL_UNET_HEADS = 8  # lxj616's released keypoint config: num_heads 8 at every level


def missing_reason() -> str | None:
    """None when the original packages import, else why not (the benches then measure posedraw alone)."""
    for name in ("ldm", "taming", "einops", "omegaconf"):
        if importlib.util.find_spec(name) is None:
            return f"{MISSING}: no module {name!r}"
    return None


def install_shims() -> None:
    """Make the original code importable under Lightning 2, and its LPIPS buildable without a download."""
    if "pytorch_lightning.utilities.distributed" in sys.modules:
        return
    try:
        import pytorch_lightning  # noqa: F401
    except ImportError:  # only the unified `lightning` package: alias the parts the original imports
        for name in ("", ".trainer", ".callbacks", ".utilities", ".utilities.rank_zero"):
            sys.modules["pytorch_lightning" + name] = importlib.import_module("lightning.pytorch" + name)
    rank_zero = importlib.import_module("pytorch_lightning.utilities.rank_zero")
    distributed = types.ModuleType("pytorch_lightning.utilities.distributed")
    distributed.rank_zero_only = rank_zero.rank_zero_only  # type: ignore[attr-defined]
    sys.modules[distributed.__name__] = distributed
    with quiet():
        lpips = importlib.import_module("taming.modules.losses.lpips")
        attention = importlib.import_module("ldm.modules.attention")
    from torchvision.models import vgg

    def vgg16_features(pretrained: bool = False) -> types.SimpleNamespace:
        """torchvision's VGG16 convolutions (all taming's LPIPS takes from it) with random weights, without
        building the 100M-parameter classifier it never uses."""
        return types.SimpleNamespace(features=vgg.make_layers(vgg.cfgs["D"]))

    lpips.LPIPS.load_from_pretrained = lambda self, name="vgg_lpips": None
    lpips.models = types.SimpleNamespace(vgg16=vgg16_features)
    attention._ATTN_PRECISION = "fp16"  # the CompVis code's q.k in the autocast dtype (no fp32 upcast)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The original code prints (and draws progress bars) as it builds and samples; a bench's output stays
    its report."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# ---- the keypoint latent diffusion model ---------------------------------------------------------------


class KeypointTokens(torch.nn.Module):
    """lxj616's condition stage: the keypoint tokens as they come, one (B, 1, 17) float token per image
    (latent-diffusion's get_input turns the (B, 1, 17) batch entry into (B, 1, 1, 17) first)."""

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.reshape(len(tokens), 1, -1).float()


def _vq_interface():
    """latent-diffusion's VQModelInterface over taming's VQModel: encode stops before the quantizer (the
    space the diffusion model works in), decode quantizes first."""
    from taming.models.vqgan import VQModel

    class VQModelInterface(VQModel):
        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.quant_conv(self.encoder(x))

        def decode(self, h: torch.Tensor) -> torch.Tensor:
            quant, _, _ = self.quantize(h)
            return self.decoder(self.post_quant_conv(quant))

    return VQModelInterface


def ddconfig(vq: Any) -> dict[str, Any]:
    """taming's encoder/decoder arguments for a posedraw VQConfig."""
    return {
        "double_z": False, "z_channels": vq.z_channels, "resolution": vq.resolution, "in_channels": vq.in_channels,
        "out_ch": vq.out_channels, "ch": vq.ch, "ch_mult": list(vq.ch_mult), "num_res_blocks": vq.num_res_blocks,
        "attn_resolutions": list(vq.attn_resolutions), "dropout": 0.0,
    }  # fmt: skip


def original_ldm(unet: Any, vq: Any, diffusion: Any, learning_rate: float):
    """A `LatentDiffusion` of the original set-up at posedraw's sizes (`unet` a posedraw UNetConfig, `vq` a
    VQConfig, `diffusion` a DiffusionConfig), in training mode, with its AdamW as `.optimizer`."""
    install_shims()
    from ldm.models.diffusion.ddpm import LatentDiffusion, disabled_train
    from ldm.modules.attention import BasicTransformerBlock

    class KeypointLatentDiffusion(LatentDiffusion):
        """Stages given as modules instead of configs to instantiate."""

        def instantiate_first_stage(self, model: torch.nn.Module) -> None:
            self.first_stage_model = model.eval()
            self.first_stage_model.train = types.MethodType(disabled_train, self.first_stage_model)
            self.first_stage_model.requires_grad_(False)

        def instantiate_cond_stage(self, model: torch.nn.Module) -> None:
            self.cond_stage_model = model

    unet_params = {
        "image_size": unet.sample_size, "in_channels": unet.latent_channels, "out_channels": unet.latent_channels,
        "model_channels": unet.model_channels, "attention_resolutions": list(unet.attention_resolutions),
        "num_res_blocks": unet.num_res_blocks, "channel_mult": list(unet.channel_mult),
        "num_heads": ORIGINAL_UNET_HEADS, "use_spatial_transformer": True,
        "transformer_depth": unet.transformer_depth, "context_dim": 17, "legacy": False,
    }  # fmt: skip
    first_stage = _vq_interface()(ddconfig(vq), {"target": "torch.nn.Identity"}, vq.n_embed, vq.embed_dim)
    with quiet():
        model = KeypointLatentDiffusion(
            first_stage_config=first_stage, cond_stage_config=KeypointTokens(), cond_stage_key="keypoints",
            conditioning_key="crossattn", num_timesteps_cond=1, timesteps=diffusion.timesteps,
            linear_start=diffusion.beta_start, linear_end=diffusion.beta_end, first_stage_key="image",
            image_size=unet.sample_size, channels=unet.latent_channels, monitor=None, use_ema=True,
            unet_config={"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": unet_params},
        )  # fmt: skip
    for block in model.modules():
        if isinstance(block, BasicTransformerBlock):
            block.checkpoint = True
    model.learning_rate = learning_rate
    model.optimizer = model.configure_optimizers()
    return model.train()


def ldm_batch(images: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """The original data loader's batch: images (B, H, W, 3) in [-1, 1], keypoint tokens (B, 1, 17)."""
    return {"image": images.permute(0, 2, 3, 1).contiguous(), "keypoints": tokens[:, None, :].float()}


def ldm_train_step(model, batch: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> float:
    """One step as Lightning 1.x ran it: training_step (images through the first stage, then the diffusion
    loss), backward, AdamW, then the EMA update of on_train_batch_end. `dtype`: autocast (fp16 with a
    GradScaler, as Lightning's 16-bit precision did)."""
    with _autocast(model, dtype):
        loss = model.training_step(batch, 0)
    _backward_step(model, loss, model.optimizer, dtype)
    model.on_train_batch_end()
    return float(loss.detach())


def ldm_unet_step(model, latents: torch.Tensor, context: torch.Tensor, dtype: torch.dtype | None = None) -> float:
    """The same step from latents already encoded (the UNet's share of the original's step)."""
    with _autocast(model, dtype):
        loss, _ = model(latents, context)
    _backward_step(model, loss, model.optimizer, dtype)
    model.on_train_batch_end()
    return float(loss.detach())


def _autocast(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.autocast:
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None)


def _backward_step(model, loss: torch.Tensor, optimizer: torch.optim.Optimizer, dtype: torch.dtype | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    if dtype != torch.float16:
        loss.backward()
        optimizer.step()
        return
    if not hasattr(model, "grad_scaler"):
        model.grad_scaler = torch.amp.GradScaler(next(model.parameters()).device.type)
    model.grad_scaler.scale(loss).backward()
    model.grad_scaler.step(optimizer)
    model.grad_scaler.update()


@torch.no_grad()
def ddim_image(model, context: torch.Tensor, steps: int) -> torch.Tensor:
    """One image as the original's sample_pose_diffusion.py draws it: EMA weights, DDIM with `steps` steps
    and eta 0 (its shipped command: -c 500 -e 0.0), then the first stage's decoder."""
    from ldm.models.diffusion.ddim import DDIMSampler

    shape = (model.channels, model.image_size, model.image_size)
    with model.ema_scope(), quiet():
        samples, _ = DDIMSampler(model).sample(
            steps, batch_size=len(context), shape=shape, conditioning=context, eta=0.0, verbose=False
        )
    return model.decode_first_stage(samples)


# ---- the VQGAN first stage -------------------------------------------------------------------------------


def original_vqgan(vq: Any, loss: Any, learning_rate: float):
    """taming's VQModel + VQLPIPSWithDiscriminator at posedraw's sizes (`vq` a VQConfig, `loss` a
    VQLossConfig), the discriminator on from the first step; `.optimizers` its two Adams."""
    install_shims()
    from taming.models.vqgan import VQModel

    loss_params = {
        "disc_start": 0, "codebook_weight": loss.codebook_weight, "disc_weight": loss.disc_weight,
        "perceptual_weight": loss.perceptual_weight, "disc_num_layers": loss.disc_layers, "disc_in_channels": 3,
        "disc_loss": loss.disc_loss, "disc_conditional": False, "disc_ndf": loss.disc_channels,
    }  # fmt: skip
    lossconfig = {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator", "params": loss_params}
    with quiet():
        model = VQModel(ddconfig(vq), lossconfig, vq.n_embed, vq.embed_dim)
    model.learning_rate = learning_rate
    model.optimizers_ = model.configure_optimizers()[0]
    return model.train()


@contextlib.contextmanager
def only_trains(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Lightning 1.x's toggle_optimizer: while one optimizer's step runs, parameters of the others do not
    require gradients (so the generator pass builds no graph for the discriminator, and back)."""
    mine = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in mine]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def vq_train_step(model, images: torch.Tensor, dtype: torch.dtype | None = None) -> float:
    """One step as Lightning 1.x ran taming's two optimizers: training_step for the autoencoder (a full
    forward, LPIPS, adaptive GAN weight) and again for the discriminator (a second autoencoder forward)."""
    batch = {"image": images.permute(0, 2, 3, 1).contiguous()}
    total = 0.0
    for index, optimizer in enumerate(model.optimizers_):
        with only_trains(model, optimizer):
            with _autocast(model, dtype):
                loss = model.training_step(batch, 0, index)
            _backward_step(model, loss, optimizer, dtype)
        total += float(loss.detach())
    return total


# ---- the f16 code transformer --------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformerSize:
    num_codes: int
    codes: int  # codes per image (grid * grid)
    layers: int
    heads: int
    width: int
    prefix: int = 17  # the pose tokens before the codes


def original_transformer(size: TransformerSize):
    """taming's Net2NetTransformer around minGPT at `size`, in eval mode (sampling)."""
    install_shims()
    from taming.models.cond_transformer import Net2NetTransformer

    gpt = {"vocab_size": size.num_codes, "block_size": size.prefix + size.codes, "n_layer": size.layers,
           "n_head": size.heads, "n_embd": size.width}  # fmt: skip
    placeholder = {"target": "taming.modules.losses.vqperceptual.DummyLoss"}
    with quiet():
        model = Net2NetTransformer(
            {"target": "taming.modules.transformer.mingpt.GPT", "params": gpt}, placeholder, placeholder
        )
    return model.eval()


def taming_sample(model, pose_tokens: torch.Tensor, codes: int, top_k: int | None = 100) -> torch.Tensor:
    """`codes` codes after the (B, 17) pose tokens with taming's loop: the whole sequence through the GPT for
    every code (no cache), top-k, multinomial."""
    empty = pose_tokens[:, :0]
    top_k = None if top_k is None else min(top_k, model.transformer.config.vocab_size)
    return model.sample(empty, pose_tokens, codes, sample=True, top_k=top_k)
