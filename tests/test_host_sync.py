"""A training step never waits for the device: values reach the host only on the steps that log.

On a GPU every `.item()`, `float(tensor)`, `.cpu()` or `if tensor:` inside a step stalls the host until the
queued kernels finish, so the next step cannot be queued behind them. The CPU cannot show the stall, but it
can count the reads: each stage runs through the real driver with the torch.Tensor methods that read values
patched to count, and only the steps at Lightning's logging interval (`log_every_n_steps`) may read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from posedraw.train.driver import RunOptions, run_stage
from posedraw.train.ldm import module as ldm_module
from posedraw.train.ldm.stage import ldm_stage
from posedraw.train.transformer import module as transformer_module
from posedraw.train.transformer.stage import transformer_stage
from posedraw.train.vq import module as vq_module
from posedraw.train.vq.stage import vq_stage

from .tiny_world import TINY_LDM, TINY_TRANSFORMER, TINY_VQ_RUN, write_config

HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")
LOG_EVERY = 10  # the driver's log_every_n_steps
STEPS = 13


class ReadsPerStep(Callback):
    """Counts host reads from one step's start to the next step's start (the loader's fetch, the step,
    every callback and Lightning's logging in between)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: list[int] = []
        self.current = 0
        for name in HOST_READS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(original))

    def _counting(self, original: Any) -> Any:
        def read(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self.current += 1
            return original(tensor, *args, **kwargs)

        return read

    def on_train_batch_start(self, *args: Any) -> None:
        self.counts.append(self.current)
        self.current = 0


def _reads(stage, out: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Host reads of each whole step after the first (index i: from step i + 1's start to step i + 2's).
    The optimizers run fused, as they do on a GPU (devices.optimizer_options): torch's unfused CPU Adam reads
    its step count with `.item()`, the fused kernel keeps it on the device."""
    for module in (ldm_module, transformer_module, vq_module):
        monkeypatch.setattr(module, "optimizer_options", lambda device: {"fused": True})
    counter = ReadsPerStep(monkeypatch)
    stage.callbacks.insert(0, counter)
    run_stage(stage, RunOptions(out=out, device="cpu", max_steps=STEPS, progress=False))
    return counter.counts[2:]


def _quiet_steps(counts: list[int]) -> list[int]:
    """The counts of steps that do not log (step s logs when s % LOG_EVERY == 0; counts[i] is step i + 2)."""
    return [c for i, c in enumerate(counts) if (i + 2) % LOG_EVERY != 0]


@pytest.mark.slow
def test_ldm_training_steps_read_the_device_only_when_logging(world, tmp_path, monkeypatch):
    config = write_config(tmp_path, "ldm", TINY_LDM)
    stage = ldm_stage(config, world / "cache", world / "vq", tmp_path / "run")
    counts = _reads(stage, tmp_path / "run", monkeypatch)
    assert _quiet_steps(counts) == [0] * len(_quiet_steps(counts)), counts


@pytest.mark.slow
def test_transformer_training_steps_read_the_device_only_when_logging(world, tmp_path, monkeypatch):
    config = write_config(tmp_path, "transformer", TINY_TRANSFORMER)
    stage = transformer_stage(config, world / "cache", world / "vq", tmp_path / "run")
    counts = _reads(stage, tmp_path / "run", monkeypatch)
    assert _quiet_steps(counts) == [0] * len(_quiet_steps(counts)), counts


@pytest.mark.slow
def test_vq_training_steps_read_the_device_only_when_logging(world, tmp_path, monkeypatch):
    config = write_config(tmp_path, "vq", TINY_VQ_RUN)
    stage = vq_stage(config, world / "toy", tmp_path / "run")
    counts = _reads(stage, tmp_path / "run", monkeypatch)
    assert _quiet_steps(counts) == [0] * len(_quiet_steps(counts)), counts
