"""The processes of a data-parallel run: which one speaks, and how they end together.

Lightning starts the ranks of a node as child processes of rank 0 and watches them: when a child fails, it
kills the others. The other direction is ours: rank 0 kills its children when it fails, and every child asks
the kernel to kill it when its parent dies. Otherwise a rank whose peer is gone waits in the next collective
until a timeout (half an hour), holding its GPU.

This module imports no Lightning, so a rank can set this up first thing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from typing import Any

PR_SET_PDEATHSIG = 1


#: the global rank as the launchers that start every process themselves set it (torchrun, SLURM's srun)
LAUNCHER_RANKS = ("RANK", "SLURM_PROCID")


def is_first_process() -> bool:
    """Global rank 0, decided before any process group exists: the only process that prints and tidies the
    run folder. torchrun and srun start every rank and give its global rank; with `--num-nodes` started by
    hand, Lightning starts the other ranks of a machine (LOCAL_RANK) and NODE_RANK names the machine."""
    for name in LAUNCHER_RANKS:
        if name in os.environ:
            return int(os.environ[name]) == 0
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def die_with_parent() -> None:
    """In a rank started by another process (LOCAL_RANK > 0), have Linux kill this process when its parent
    dies."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0 or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_children(trainer: Any) -> None:
    """Rank 0 failed: kill the ranks its launcher started (they would wait for it in the next collective)."""
    for proc in getattr(trainer.strategy.launcher, "procs", []):
        with contextlib.suppress(OSError):
            proc.kill()
