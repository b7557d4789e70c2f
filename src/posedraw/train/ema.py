"""Exponential moving average of weights that lives where the weights live.

The average is torch's `AveragedModel`, held as a submodule of the LightningModule: it moves with the module
(`.to(device)`), is part of its state dict (so `last.ckpt` holds it and a resume restores it exactly), and
its parameters are frozen, so DDP neither reduces nor waits for them. The update is ours, not
`AveragedModel.update_parameters`: that one branches on its device-side update count (`if n_averaged > 0`),
a host read every training step.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel


class WarmupEMA:
    """`multi_avg_fn` of an EMA whose decay warms up: min(decay, (1 + n) / (10 + n)) after n updates (the
    warm-up diffusers' EMAModel uses), so early averages are not dominated by the random initial weights.
    The first update (n = 0) copies the weights (lerp with weight 1 is exact). Computed on the device, without
    a host sync."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def __call__(self, averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        n = updates.to(averaged[0].dtype)
        decay = torch.where(n == 0, 0.0, torch.clamp((1 + n) / (10 + n), max=self.decay))
        torch._foreach_lerp_(averaged, current, 1 - decay)


def averaged_copy(modules: dict[str, torch.nn.Module], decay: float) -> AveragedModel:
    """A frozen EMA copy of `modules` (reach them as `ema.module[name]`); update with `update_ema`."""
    ema = AveragedModel(torch.nn.ModuleDict(modules), multi_avg_fn=WarmupEMA(decay), use_buffers=False)
    ema.requires_grad_(False)
    return ema


def update_ema(ema: AveragedModel, modules: dict[str, torch.nn.Module]) -> None:
    """One EMA step towards the current weights of `modules` (the same names as at creation)."""
    with torch.no_grad():
        averaged = [p.detach() for p in ema.module.parameters()]
        current = [p.detach() for p in torch.nn.ModuleDict(modules).parameters()]
        ema.multi_avg_fn(averaged, current, ema.n_averaged)
        ema.n_averaged += 1
