"""Options shared by the commands: device, devices, precision, trust, and checks of output paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DeviceOption = Annotated[
    str, typer.Option("--device", help="auto (CUDA when present, else CPU), cpu or cuda.", show_default=True)
]
DevicesOption = Annotated[int, typer.Option("--devices", min=1, help="GPUs (or CPU processes) per node; >1 uses DDP.")]
NodesOption = Annotated[int, typer.Option("--num-nodes", min=1, help="Machines taking part (DDP).")]
PrecisionOption = Annotated[
    str | None,
    typer.Option("--precision", help="Lightning precision, e.g. bf16-mixed, 16-mixed, 32-true (default: by device)."),
]
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint/--no-trust-checkpoint",
        metavar="",
        help="Allow pickled checkpoints that hold Python objects (can run code: only for files you trust).",
    ),
]


def writable_dir(value: Path | None) -> Path | None:
    """Option callback: an output folder that can be made and written, checked before any work."""
    from posedraw.io import check_writable_dir

    if value is not None:
        check_writable_dir(value)
    return value


def writable_file(value: Path | None) -> Path | None:
    """Option callback: an output file that can be written, checked before any work."""
    from posedraw.io import check_writable_file

    if value is not None:
        check_writable_file(value)
    return value


def vq_model(value: Path | None) -> Path | None:
    """Option callback: a model folder that holds a VQ (checked before any work)."""
    from posedraw.models.vq import vq_folder

    if value is not None:
        vq_folder(value)
    return value


CompileOption = Annotated[
    bool, typer.Option("--compile", metavar="", help="torch.compile the network (slow first step; docs/speed.md).")
]
