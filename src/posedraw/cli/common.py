"""Options shared by the commands that run models: device, devices, precision, trust."""

from __future__ import annotations

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
        "--trust-checkpoint",
        help="Allow pickled checkpoints that hold Python objects (can run code: only for files you trust).",
    ),
]
