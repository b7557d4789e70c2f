"""posedraw against the original code on the same machine, in one run, at the same sizes and on the same inputs.

The original networks come from the original code (bench/original.py; install it with
scripts/install_original.sh). Weights are random on both sides (speed does not depend on them). Four
comparisons, each alternating the two systems (A B A B ...) after a warm-up, medians of `--repeats`:

1. `ldm_train_step`: one diffusion training step as each system runs it. The original encodes the batch's
   images through its first stage every step (latent-diffusion's get_input), then the loss, AdamW and its
   EMA; posedraw reads latents from its cache: LatentDiffusionModule.training_step, AdamW and EMA
   (module.optimizer_step). `ldm_unet_step`: the original's step from latents already encoded (posedraw's
   step is already that).
2. `sampling_network_evaluation`: one UNet evaluation of a sampling step, batch 1. `whole_image`: one image,
   decoded: the original's DDIM with the steps its sampling script ships with (500, eta 0) vs posedraw's
   pipeline with its default sampler, steps and guidance. Where `--measure-steps` is below the original's
   steps (the CPU default), the original's time is extrapolated from the steps measured, and the row says so
   (`extrapolated_from_steps`).
3. `vq_train_step`: one VQGAN-f4 training step, generator and discriminator, LPIPS on (random weights on both
   sides, no download), the discriminator active from the first step.
4. `transformer_image_codes`: one image's codes (256 at the f16 size) from the pose tokens: taming's loop
   (the whole sequence through the GPT for every code) vs posedraw's cached sampler, unguided and with pose
   guidance (both branches); top-k 100.

Precision: on the CPU both run in fp32. On a GPU posedraw runs in bf16 autocast, the original in fp32 and
in fp16 autocast (with a GradScaler for training), and the faster of the two is reported and named.
Sizes: `released` (the shipped configs: configs/ldm-kp-f4.yaml, vq-f4.yaml, transformer-f16.yaml),
`reduced` (smaller widths / resolution / depth, named in the report's `sizes`), `tiny` (a dry run);
`--reduce PART ...` runs only those parts reduced. The report records the machine's load average before
and after each part (other work on the machine slows a CPU bench).

    python bench/vs_original.py --device cpu --threads 1 --json bench/results/vs_original_cpu.json
    python bench/vs_original.py --device cuda --json bench/results/vs_original_gpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import original
from common import alternate, machine_load, publish, report_header, write_json

from posedraw.config import from_dict, merge_config, read_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "src" / "posedraw" / "configs"
PARTS = ("ldm_train", "sampling", "vq_train", "transformer")
#: merged into the shipped configs (ldm-kp-f4, vq-f4, transformer-f16) for each size; the LDM's first stage
#: is the vq-f4 of the same size, so its latents fit the UNet
SIZES: dict[str, dict[str, dict]] = {
    "released": {"ldm": {}, "vq": {}, "transformer": {}},
    "reduced": {
        "ldm": {"unet": {"sample_size": 32, "model_channels": 64}},
        "vq": {"model": {"resolution": 128, "ch": 64}},
        "transformer": {"model": {"layers": 6}},
    },
    "tiny": {
        "ldm": {"unet": {"sample_size": 8, "model_channels": 32, "channel_mult": [1, 2], "attention_resolutions": [2],
                         "num_res_blocks": 1}},
        "vq": {"model": {"resolution": 32, "ch": 32, "n_embed": 64},
               "loss": {"disc_layers": 2, "disc_channels": 16, "perceptual_weight": 0}},
        "transformer": {"model": {"layers": 2, "heads": 2, "width": 64, "num_codes": 64, "grid": 4}},
    },
}  # fmt: skip
#: batch sizes on the CPU (a GPU takes the configs' own)
CPU_BATCH = {"ldm": 2, "vq": 1}
TOP_K = 100
Row = dict[str, Any]


# ---- configs, inputs, precision -------------------------------------------------------------------------


def config_of(cls: type, name: str, overrides: dict) -> Any:
    """A shipped config with `overrides` merged in, as the typed config posedraw trains from."""
    return from_dict(cls, merge_config(read_config(CONFIGS / f"{name}.yaml"), overrides))


def ldm_configs(size: str):
    """(LDMRunConfig, VQRunConfig) of the keypoint LDM and its first stage; the latent scale is fixed at 1
    (the original's, and posedraw measures it from the cache, which a bench has none of)."""
    from posedraw.train.ldm import LDMRunConfig

    ldm = config_of(LDMRunConfig, "ldm-kp-f4", merge_config(SIZES[size]["ldm"], {"diffusion": {"scale_factor": 1.0}}))
    return ldm, vq_config(size)


def vq_config(size: str):
    """The vq-f4 config at `size`: LPIPS with an untrained VGG16 (no download), discriminator from step 0."""
    from posedraw.train.vq import VQRunConfig

    overrides = merge_config(SIZES[size]["vq"], {"loss": {"perceptual_backbone": "untrained", "disc_start": 0}})
    return config_of(VQRunConfig, "vq-f4", overrides)


def transformer_config(size: str):
    from posedraw.models.transformer import TransformerConfig

    model = merge_config(
        read_config(CONFIGS / "transformer-f16.yaml")["model"], SIZES[size]["transformer"].get("model", {})
    )
    return from_dict(TransformerConfig, model)


def poses(count: int) -> list:
    from posedraw.data.poses import sample_pose

    return [sample_pose(np.random.default_rng(10**9 + i), 256).label for i in range(count)]


def legacy_tokens_of(pose_list: list) -> torch.Tensor:
    """The original's conditioning: each pose's 17 grid tokens (posedraw's legacy encoder computes them)."""
    from posedraw.models.conditioning import LegacyPoseEncoder

    return LegacyPoseEncoder().prepare(pose_list)["tokens"].long()


def precisions(device: str) -> tuple[torch.dtype | None, dict[str, torch.dtype | None]]:
    """posedraw's autocast dtype and the original's to try, by name (None: fp32)."""
    if device == "cuda":
        return torch.bfloat16, {"fp32": None, "fp16": torch.float16}
    return None, {"fp32": None}


def autocast(device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None)


def dtype_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[dtype]


def parameters_m(*modules: torch.nn.Module) -> float:
    return round(sum(p.numel() for module in modules for p in module.parameters()) / 1e6, 1)


def timed(device: str, ours: Callable[[], Any], theirs: dict[str, Callable[[], Any]], repeats: int,
          warmup: int = 1) -> tuple[float, dict[str, float]]:  # fmt: skip
    """posedraw's median seconds and the original's per precision, alternating."""
    sync = torch.cuda.synchronize if device == "cuda" else None
    ways = {"posedraw": ours, **{f"original_{name}": way for name, way in theirs.items()}}
    medians, _ = alternate(ways, repeats, warmup, sync)
    return medians["posedraw"], {name: medians[f"original_{name}"] for name in theirs}


def row(measure: str, ours_s: float, ours_dtype, theirs: dict[str, float], **extra: Any) -> Row:
    """One comparison: the original's faster precision against posedraw, the ratio (> 1: posedraw faster)."""
    best = min(theirs, key=theirs.__getitem__)
    fields: Row = {
        "measure": measure, "original_s": round(theirs[best], 4), "original_precision": best,
        "posedraw_s": round(ours_s, 4), "posedraw_precision": dtype_name(ours_dtype),
        "speedup": round(theirs[best] / ours_s, 2),
    }  # fmt: skip
    if len(theirs) > 1:
        fields.update({f"original_{name}_s": round(s, 4) for name, s in theirs.items()})
    return {**fields, **extra}


# ---- 1. diffusion training step ------------------------------------------------------------------------


def our_ldm_step(module, optimizer, batch: dict, device: str, dtype) -> None:
    """What Lightning's automatic optimization runs: zero_grad, then optimizer_step with a closure of
    training_step + backward (the module's optimizer_step also moves the EMA)."""

    def closure() -> torch.Tensor:
        with autocast(device, dtype):
            loss = module.training_step(batch, 0)
        loss.backward()
        return loss

    optimizer.zero_grad(set_to_none=True)
    module.optimizer_step(0, 0, optimizer, closure)


def ldm_inputs(size: str, batch: int, device: str, seed: int = 0) -> dict[str, Any]:
    """The same random inputs for both systems: images (original), latents of that shape (the cache's), poses
    and their legacy tokens."""
    from posedraw.data.latents import collate_cached

    ldm, vq = ldm_configs(size)
    generator = torch.Generator().manual_seed(seed)
    side, latent = vq.model.resolution, ldm.unet.sample_size
    images = torch.rand(batch, 3, side, side, generator=generator) * 2 - 1
    latents = torch.randn(batch, ldm.unet.latent_channels, latent, latent, generator=generator)
    pose_list = poses(batch)
    cached = collate_cached([{"latent": latents[i], "pose": pose_list[i], "key": str(i)} for i in range(batch)])
    cached["latent"] = cached["latent"].to(device)
    tokens = legacy_tokens_of(pose_list).to(device)
    return {"images": images.to(device), "latents": latents.to(device), "cached": cached, "tokens": tokens,
            "poses": pose_list}  # fmt: skip


def build_ldms(size: str, device: str, train: bool):
    """posedraw's LatentDiffusionModule and the original's LatentDiffusion at `size`, same seed."""
    from posedraw.train.ldm import LatentDiffusionModule

    ldm, vq = ldm_configs(size)
    torch.manual_seed(0)
    ours = LatentDiffusionModule(ldm).to(device).train(train)
    torch.manual_seed(0)
    theirs = original.original_ldm(ldm.unet, vq.model, ldm.diffusion, ldm.train.learning_rate).to(device)
    return ours, theirs.train(train)


def compare_ldm_train(size: str, device: str, repeats: int, batch: int | None = None) -> dict[str, Row]:
    ldm, _ = ldm_configs(size)
    batch = batch or (ldm.train.batch_size if device == "cuda" else CPU_BATCH["ldm"])
    ours, theirs = build_ldms(size, device, train=True)
    optimizer = ours.configure_optimizers()
    inputs = ldm_inputs(size, batch, device)
    ours_dtype, their_dtypes = precisions(device)
    images_batch = original.ldm_batch(inputs["images"], inputs["tokens"])
    context = inputs["tokens"][:, None, :].float()

    def ours_step() -> None:
        our_ldm_step(ours, optimizer, inputs["cached"], device, ours_dtype)

    def their_step(dtype):
        return lambda: original.ldm_train_step(theirs, images_batch, dtype)

    def their_unet_step(dtype):
        return lambda: original.ldm_unet_step(theirs, inputs["latents"], context, dtype)

    shared = {"size": size, "batch": batch, "image": int(inputs["images"].shape[-1]),
              "latent": "x".join(map(str, inputs["latents"].shape[1:])),
              "original_parameters_m": parameters_m(theirs.model),
              "posedraw_parameters_m": parameters_m(ours.unet, ours.pose_encoder)}  # fmt: skip
    ways = {f"{name}": their_step(dtype) for name, dtype in their_dtypes.items()}
    ways.update({f"{name}_unet": their_unet_step(dtype) for name, dtype in their_dtypes.items()})
    ours_s, theirs_s = timed(device, ours_step, ways, repeats)
    full = {name: theirs_s[name] for name in their_dtypes}
    unet = {name: theirs_s[f"{name}_unet"] for name in their_dtypes}
    return {
        "ldm_train_step": row("diffusion training step (original: images through its first stage; "
                              "posedraw: latent cache)", ours_s, ours_dtype, full, **shared),
        "ldm_unet_step": row("the same step from latents on both sides", ours_s, ours_dtype, unet, **shared),
    }  # fmt: skip


# ---- 2. sampling -----------------------------------------------------------------------------------------


def compare_sampling(size: str, device: str, repeats: int, original_steps: int, measure_steps: int) -> dict[str, Row]:
    from posedraw.devices import inference_autocast
    from posedraw.models.vq import build_vq
    from posedraw.train.ldm import build_pipeline

    _, vq = ldm_configs(size)
    ours, theirs = build_ldms(size, device, train=False)
    torch.manual_seed(0)
    pipeline = build_pipeline(ours, build_vq(vq.model)).to(device)
    pipeline.set_progress_bar_config(disable=True)
    defaults = pipeline.resolved_options({})
    ours_dtype, their_dtypes = precisions(device)
    pose = poses(1)
    context = legacy_tokens_of(pose).to(device)[:, None, :].float()
    x = torch.randn(1, *pipeline.latent_shape, generator=torch.Generator().manual_seed(1)).to(device)
    t = torch.tensor([500], device=device)
    cond = pipeline.pose_conditioning(pose)
    unet_input = x if cond.maps is None else torch.cat([x, cond.maps], 1)

    @torch.no_grad()
    def ours_eval() -> None:
        with inference_autocast(device):
            pipeline.unet(unet_input, t, encoder_hidden_states=cond.context)

    def their_eval(dtype):
        return torch.no_grad()(lambda: _under(device, dtype, lambda: theirs.apply_model(x, t, context)))

    evaluation = timed(device, ours_eval, {n: their_eval(d) for n, d in their_dtypes.items()}, repeats)
    steps = min(measure_steps, original_steps)

    def ours_image() -> None:
        pipeline(pose, seeds=[0])

    def their_image(dtype, count):
        return lambda: _under(device, dtype, lambda: original.ddim_image(theirs, context, count))

    def their_decode(dtype):
        return torch.no_grad()(lambda: _under(device, dtype, lambda: theirs.decode_first_stage(x)))

    pipeline(pose, seeds=[0], steps=2)  # warm-up of the whole path (the network evaluations warmed the UNets)
    for dtype in their_dtypes.values():
        their_image(dtype, 2)()
    ways = {name: their_image(dtype, steps) for name, dtype in their_dtypes.items()}
    if steps < original_steps:
        ways.update({f"{name}_decode": their_decode(dtype) for name, dtype in their_dtypes.items()})
    ours_s, theirs_s = timed(device, ours_image, ways, repeats, warmup=0)
    image = {}
    for name in their_dtypes:
        decode = theirs_s.get(f"{name}_decode", 0.0)
        image[name] = decode + (theirs_s[name] - decode) * original_steps / steps
    shared = {"size": size, "batch": 1, "latent": "x".join(map(str, pipeline.latent_shape))}
    extra = {"extrapolated_from_steps": steps} if steps < original_steps else {}
    return {
        "sampling_network_evaluation": row("one UNet evaluation of a sampling step", evaluation[0], ours_dtype,
                                           evaluation[1], **shared),
        "whole_image": row(f"one image, decoded: original DDIM {original_steps} steps (eta 0), posedraw "
                           f"{defaults['sampler']} {defaults['steps']} steps, guidance {defaults['guidance']}",
                           ours_s, ours_dtype, image, original_steps=original_steps,
                           posedraw_sampler=defaults["sampler"], posedraw_steps=defaults["steps"], **extra, **shared),
    }  # fmt: skip


def _under(device: str, dtype, call: Callable[[], Any]) -> Any:
    with autocast(device, dtype):
        return call()


# ---- 3. VQGAN training step -----------------------------------------------------------------------------


def our_vq_step(module, optimizers, images: torch.Tensor, device: str, dtype) -> None:
    """VQGANModule.training_step's body without a Trainer around it (it optimizes manually): generator
    loss (LPIPS, adaptive GAN weight) and its Adam, then the discriminator's loss and Adam."""
    opt_g, opt_d = optimizers
    step = int(module.step)
    with autocast(device, dtype):
        out = module.vq(images)
        g_loss, _ = module.loss.generator_loss(
            images, out.sample, out.commit_loss, step, module.vq.decoder.conv_out.weight
        )
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    if module.loss.disc_active(step):
        with autocast(device, dtype):
            d_loss, _ = module.loss.discriminator_loss(images, out.sample)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    module.step += 1


def compare_vq_train(size: str, device: str, repeats: int, batch: int | None = None) -> dict[str, Row]:
    from posedraw.train.vq import VQGANModule

    config = vq_config(size)
    batch = batch or (config.train.batch_size if device == "cuda" else CPU_BATCH["vq"])
    torch.manual_seed(0)
    ours = VQGANModule(config).to(device).train()
    optimizers = ours.configure_optimizers()
    torch.manual_seed(0)
    theirs = original.original_vqgan(config.model, config.loss, config.train.learning_rate).to(device)
    side = config.model.resolution
    images = (torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    ours_dtype, their_dtypes = precisions(device)
    ours_s, theirs_s = timed(
        device, lambda: our_vq_step(ours, optimizers, images, device, ours_dtype),
        {name: (lambda d=dtype: original.vq_train_step(theirs, images, d)) for name, dtype in their_dtypes.items()},
        repeats,
    )  # fmt: skip
    return {"vq_train_step": row(
        "VQGAN-f4 training step: generator + discriminator, LPIPS (random VGG16 weights on both sides)",
        ours_s, ours_dtype, theirs_s, size=size, batch=batch, image=side,
        original_parameters_m=parameters_m(theirs.encoder, theirs.decoder, theirs.quantize, theirs.quant_conv,
                                            theirs.post_quant_conv),
        posedraw_parameters_m=parameters_m(ours.vq),
    )}  # fmt: skip


# ---- 4. transformer sampling ---------------------------------------------------------------------------


def build_transformers(size: str, device: str):
    """posedraw's CodeSampler (pose encoder with a null pose: guidance works) and taming's Net2NetTransformer."""
    from posedraw.models.transformer import CodeSampler, build_transformer, pose_encoder_for

    config = transformer_config(size)
    torch.manual_seed(0)
    ours = CodeSampler(build_transformer(config).to(device), pose_encoder_for(config, null_pose=True).to(device))
    size_of = original.TransformerSize(config.num_codes, config.grid**2, config.layers, config.heads, config.width)
    torch.manual_seed(0)
    return ours, original.original_transformer(size_of).to(device), config


def compare_transformer(size: str, device: str, repeats: int) -> dict[str, Row]:
    from posedraw.models.transformer import Sampling

    ours, theirs, config = build_transformers(size, device)
    pose = poses(1)
    tokens = (legacy_tokens_of(pose) % config.num_codes).to(device)
    codes = config.grid**2
    ours_dtype, their_dtypes = precisions(device)
    unguided, guided = Sampling(top_k=TOP_K), Sampling(top_k=TOP_K, guidance=2.0)

    def taming(dtype, count: int = codes):
        return lambda: _under(device, dtype, lambda: original.taming_sample(theirs, tokens, count, TOP_K))

    theirs_ways = {name: taming(dtype) for name, dtype in their_dtypes.items()}
    for dtype in their_dtypes.values():  # warm-up with a few codes: taming's full loop costs minutes on a CPU
        taming(dtype, 4)()
    ours(pose, [0], guided)  # warm-up (both branches)
    sync = torch.cuda.synchronize if device == "cuda" else None
    ways = {"posedraw": lambda: ours(pose, [0], unguided), "posedraw_guided": lambda: ours(pose, [0], guided)}
    ways.update({f"original_{name}": way for name, way in theirs_ways.items()})
    medians, _ = alternate(ways, repeats, warmup=0, sync=sync)
    theirs_s = {name: medians[f"original_{name}"] for name in their_dtypes}
    shared = {"size": size, "codes": codes, "batch": 1, "top_k": TOP_K,
              "original_parameters_m": parameters_m(theirs.transformer),
              "posedraw_parameters_m": parameters_m(ours.model)}  # fmt: skip
    rows = {}
    kinds = (("transformer_image_codes", "unguided", 1.0),
             ("transformer_image_codes_guided", "pose guidance 2 (both branches)", 2.0))  # fmt: skip
    for key, label, guidance in kinds:
        seconds = medians["posedraw" if guidance == 1.0 else "posedraw_guided"]
        rows[key] = row(f"one image's codes: taming's loop vs posedraw's KV-cached sampler, {label}", seconds,
                        ours_dtype, theirs_s, guidance=guidance, posedraw_codes_per_s=round(codes / seconds, 1),
                        original_codes_per_s=round(codes / min(theirs_s.values()), 1), **shared)  # fmt: skip
    return rows


# ---- the run ---------------------------------------------------------------------------------------------


def run_part(part: str, size: str, args: argparse.Namespace) -> dict[str, Row]:
    if part == "ldm_train":
        return compare_ldm_train(size, args.device, args.repeats)
    if part == "sampling":
        measure = args.measure_steps or (args.original_steps if args.device == "cuda" else 20)
        return compare_sampling(size, args.device, args.repeats, args.original_steps, measure)
    if part == "vq_train":
        return compare_vq_train(size, args.device, args.repeats)
    return compare_transformer(size, args.device, args.repeats)


def describe_sizes() -> dict[str, Row]:
    """What each size is, for the report (the overrides merged into the shipped configs)."""
    import json

    return {size: {part: json.dumps(overrides) or "{}" for part, overrides in parts.items()}
            for size, parts in SIZES.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--size", default="released", choices=list(SIZES))
    parser.add_argument("--reduce", nargs="*", default=[], choices=PARTS, help="parts run at the reduced size")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--original-steps", type=int, default=500, help="the original's DDIM steps (its script's)")
    parser.add_argument(
        "--measure-steps", type=int, help="DDIM steps actually run (default: all on a GPU, 20 on a CPU)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: no CUDA GPU here")
    reason = original.missing_reason()
    if reason:
        sys.exit(f"error: {reason}")
    torch.set_num_threads(args.threads)
    machine = torch.cuda.get_device_name() if args.device == "cuda" else None
    rows: dict[str, Row] = {}
    started = time.perf_counter()
    for part in args.parts:
        size = "reduced" if part in args.reduce else args.size
        before = machine_load()
        for name, fields in run_part(part, size, args).items():
            rows[name] = {**fields, "load_before": before, "load_after": machine_load()}
        report = {
            "device": args.device, "torch": torch.__version__, "repeats": args.repeats,
            "sizes_used": {part: "reduced" if part in args.reduce else args.size for part in args.parts},
            "original_code": "stable-diffusion-sdkit 2.1.5 (ldm), taming-transformers 0.0.1 (taming); "
                             + original.RANDOM_LPIPS,
            "seconds": round(time.perf_counter() - started, 1),
            "comparisons": rows, "sizes": describe_sizes(),
        }  # fmt: skip
        if args.json and part != args.parts[-1]:  # what is done so far survives a run cut short
            write_json(args.json, {**report_header("vs_original", machine), **report})
    publish("vs_original", report, args.json, machine)


if __name__ == "__main__":
    main()
