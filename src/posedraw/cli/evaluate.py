"""`posedraw eval ...`: measure generated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Measure generated images.", no_args_is_help=True)


@app.command("pose")
def pose_fidelity(
    images: Annotated[list[Path], typer.Argument(help="PNGs made by posedraw generate (they carry their pose).")],
    detector: Annotated[str, typer.Option("--detector", help="toy (synthetic figures) or mediapipe.")] = "toy",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON.")] = None,
) -> None:
    """Pose fidelity: PCK@0.1 and OKS of the detected pose against the conditioning pose, and L/R swaps.

    Example: posedraw eval pose out/*.png --detector toy
    """
    import torch
    from PIL import Image

    from posedraw.data.images import to_tensor
    from posedraw.eval.fidelity import detect, fidelity, in_image_frame
    from posedraw.io import write_text_atomic
    from posedraw.pipelines.generate import read_png_metadata

    targets, tensors = [], []
    for path in images:
        job, _, _ = read_png_metadata(path)
        with Image.open(path) as image:
            tensors.append(to_tensor(image.convert("RGB")))
        targets.append(in_image_frame(job.pose, tensors[-1].shape[-1], tensors[-1].shape[-2]))
    report = fidelity(detect(torch.stack(tensors), detector, targets), targets)
    people = ""
    if report.people != report.images:
        people = f", {report.people} people: per-person PCK {report.person_pck:.3f}"
    typer.echo(
        f"{report.images} images: PCK@0.1 {report.pck:.3f}, OKS {report.oks:.3f}, "
        f"left/right swaps {report.swap_rate:.3f} ({detector} detector){people}"
    )
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(report.as_dict(), indent=1) + "\n")
