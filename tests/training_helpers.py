"""Data-parallel training through the installed `posedraw` command, shared by the tests that start ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .tiny_world import TINY_TRANSFORMER, build_world, write_config

POSEDRAW = str(Path(sys.executable).parent / "posedraw")


def train_command(stage: str, config: Path, data: Path, vq: Path, out: Path, *more: str, devices: int = 2) -> list[str]:
    """`posedraw train <stage>` on the CPU with `devices` processes (on this machine) and the `more` options."""
    data_flag = "--latents" if stage == "ldm" else "--codes"
    return [POSEDRAW, "train", stage, "--config", str(config), data_flag, str(data), "--vq", str(vq),
            "--out", str(out), "--device", "cpu", "--devices", str(devices), *more]  # fmt: skip


def ranks_agree(out: Path) -> list[str]:
    """The weights' digests of every rank of the run in `out`, which must have had two."""
    record = json.loads((out / "run.json").read_text())
    assert record["world_size"] == 2
    return record["rank_weights_sha256"]


@dataclass(frozen=True)
class TwoProcessRun:
    """A finished 4-step transformer run of two processes on one machine (one thread each)."""

    world: Path  # a tiny world whose cache is one shard: the two ranks split it by sample
    config: Path
    out: Path
    result: subprocess.CompletedProcess

    steps = 4


def one_thread_per_process() -> dict[str, str]:
    """The environment for ranks that must agree with another run's: Lightning gives a CPU process
    cpu_count / its machine's ranks threads, and another thread count rounds the float sums differently."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def train_on_two_processes(root: Path) -> TwoProcessRun:
    """The run that tests/test_training_ddp.py checks and tests/test_training_nodes.py's two machines must
    repeat: started once per session, since both need the same run."""
    world = build_world(root / "one-shard", per_shard=24)
    config = write_config(root, "tf", TINY_TRANSFORMER)
    out = root / "run"
    command = train_command("transformer", config, world / "cache", world / "vq", out,
                            "--max-steps", str(TwoProcessRun.steps))  # fmt: skip
    result = subprocess.run(command, env=one_thread_per_process(), capture_output=True, text=True, timeout=300)
    return TwoProcessRun(world, config, out, result)
