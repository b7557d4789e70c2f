"""Between the diffusion module and a pipeline folder, both ways: the sampling pipeline of its networks,
the exported model folder, and fine-tuning from a trained model's folder (`--init`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from posedraw.config import to_dict
from posedraw.errors import CheckpointError
from posedraw.io import atomic_dir
from posedraw.train.ldm.config import sampling_scheduler
from posedraw.train.ldm.module import LatentDiffusionModule


def build_pipeline(module: LatentDiffusionModule, vq: torch.nn.Module, ema: bool = True):
    """A sampling pipeline of the module's networks (copies, EMA weights by default) with `vq`."""
    from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline

    networks = module.network_copies(ema)
    vq.register_to_config(scaling_factor=module.config.diffusion.scale_factor)
    pipeline = KeypointLDMPipeline(
        unet=networks["unet"], vq=vq, scheduler=sampling_scheduler(module.config.diffusion),
        pose_encoder=networks["pose_encoder"], text_encoder=networks.get("text_encoder"),
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def export_model(
    module: LatentDiffusionModule, vq: torch.nn.Module, folder: Path, steps: int, init: str | Path | None
) -> Path:
    """Write the pipeline folder `generate` loads (EMA weights), with posedraw.json (steps, config and the
    model it was fine-tuned from), as one atomic folder."""
    pipeline = build_pipeline(module, vq.cpu())
    with atomic_dir(folder) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        started = None if init is None else str(init)
        info = {"kind": "ldm", "steps": steps, "config": to_dict(module.config), "init": started}
        (tmp / "posedraw.json").write_text(json.dumps(info, indent=1) + "\n")
    return folder


#: parts a fine-tune may add to the model it starts from: the pooled text path (`build_unet` starts it at
#: zero) and the per-person prompts' binding (models/person_text.py)
NEW_PARTS = ("class_embedding.", "binding.")


def start_from(module: LatentDiffusionModule, init: str | Path) -> None:
    """Fine-tuning: the UNet and pose encoder (and their EMA) start as those of the diffusion model `init`,
    and so does the text encoder when `init` has one of the same shape (a new one starts fresh). A pooled
    text path or per-person prompts the model does not have start where they change nothing (`NEW_PARTS`,
    `_widened_input`). Refuses a model of another shape."""
    from posedraw.pipelines.loading import load_pipeline

    pipeline = load_pipeline(init)
    for name in ("unet", "pose_encoder", "text_encoder"):
        source, target = getattr(pipeline, name, None), getattr(module, name)
        if source is None and name != "text_encoder":
            raise CheckpointError(f"--init {init}: not a diffusion model (it has no {name})")
        if source is None or target is None:
            continue
        try:
            missing, unexpected = target.load_state_dict(_widened_input(source.state_dict(), target), strict=False)
        except RuntimeError:
            missing, unexpected = ["(shapes)"], []
        if unexpected or any(not key.startswith(NEW_PARTS) for key in missing):
            if name == "text_encoder":  # another vocabulary: learned afresh
                continue
            raise CheckpointError(f"--init {init}: its {name} has another shape than the config's")
    module.ema.module.load_state_dict(torch.nn.ModuleDict(module.networks()).state_dict())


def _widened_input(state: dict[str, torch.Tensor], target: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`state` with the UNet's input convolution widened by zero weights to the target's input channels:
    map channels a fine-tune adds (per-person prompts') after the model's own start at no effect."""
    name = "conv_in.weight"
    wanted = getattr(getattr(target, "conv_in", None), "weight", None)
    if name not in state or wanted is None or state[name].shape[1] >= wanted.shape[1]:
        return state
    weight = state[name]
    extra = weight.new_zeros(weight.shape[0], wanted.shape[1] - weight.shape[1], *weight.shape[2:])
    return {**state, name: torch.cat([weight, extra], dim=1)}
