"""Between the VQGAN module and a VQ model folder, both ways: the exported folder and fine-tuning from one
(`--init`)."""

from __future__ import annotations

from pathlib import Path

import torch

from posedraw.config import to_dict
from posedraw.errors import ConfigError
from posedraw.models.vq import load_vq, save_vq
from posedraw.pipelines.loading import resolve_model
from posedraw.train.vq.config import VQRunConfig


def export_vq(vq: torch.nn.Module, folder: Path, config: VQRunConfig, steps: int) -> Path:
    """Write the VQ model folder, with the run's config and steps."""
    save_vq(vq, folder, {"config": to_dict(config), "steps": steps})
    return folder


def start_vq_from(vq: torch.nn.Module, init: str | Path) -> None:
    """Copy the weights of the VQ in model folder `init` (a VQ or pipeline folder, or "builtin") into `vq`;
    refuses a VQ of another shape in one line."""
    weights = load_vq(resolve_model(str(init))).state_dict()
    mine = vq.state_dict()
    wrong = [k for k in mine if k not in weights or weights[k].shape != mine[k].shape]
    if wrong or len(weights) != len(mine):
        raise ConfigError(f"--init {init}: its VQ is not the config's network (first difference: "
                          f"{(wrong or sorted(set(weights) - set(mine)))[0]})")  # fmt: skip
    vq.load_state_dict(weights)
