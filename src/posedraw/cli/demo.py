"""`posedraw demo`: the whole system end to end with no download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import DeviceOption, writable_dir


def demo(
    out: Annotated[
        Path, typer.Option("--out", callback=writable_dir, help="Folder for data, models and the grid.")
    ] = Path("posedraw-demo"),
    figures: Annotated[int, typer.Option("--figures", min=16, help="Toy figures to train on.")] = 1500,
    vq_steps: Annotated[int, typer.Option("--vq-steps", min=1, help="VQ training steps.")] = 400,
    ldm_steps: Annotated[int, typer.Option("--ldm-steps", min=1, help="Diffusion training steps.")] = 400,
    device: DeviceOption = "auto",
) -> None:
    """Toy data, a VQ and a diffusion model trained briefly, drawings of held-out poses, pose fidelity.

    Example: posedraw demo --out demo/
    """
    from posedraw.demo import run_demo

    result = run_demo(out, figures, vq_steps, ldm_steps, device, say=typer.echo)
    r = result.report
    typer.echo(f"wrote {result.grid} (pose | sample for {r.images} held-out poses); model in {result.model}")
    typer.echo(
        f"pose fidelity (toy detector): PCK@0.1 {r.pck:.3f}, OKS {r.oks:.3f}, left/right swaps {r.swap_rate:.3f}"
    )
