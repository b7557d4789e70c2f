"""The first step of a sampling loop that produced inf or nan, kept on the device.

Checking values on the host every step would make each step wait for the device; noting the first bad
step is a tensor update, and the loop reads it once, at the end. A bad step is a SamplingError naming it,
never an image: quantizing nan gives a valid-looking black image.
"""

from __future__ import annotations

import torch

from posedraw.errors import SamplingError


class FirstNonFinite:
    def __init__(self, device: torch.device | str) -> None:
        self.index = torch.full((), -1, device=device)  # the first bad step (-1: none)

    def note(self, step: int, values: torch.Tensor) -> None:
        """Remember `step` if `values` hold inf or nan and no earlier step did (no host sync)."""
        self.index = torch.where((self.index < 0) & ~torch.isfinite(values).all(), step, self.index)

    def check(self, where: str, advice: str) -> None:
        """Raise SamplingError if a step was bad; `where` is formatted with its 1-based number."""
        step = int(self.index)  # the one host sync
        if step >= 0:
            raise SamplingError(f"{where.format(step + 1)}: the model produced non-finite values (inf or nan), so "
                                f"no image was made; {advice}")  # fmt: skip


__all__ = ["FirstNonFinite"]
