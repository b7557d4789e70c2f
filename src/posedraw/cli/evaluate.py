"""`posedraw eval ...`: measure generated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import writable_file

app = typer.Typer(help="Measure generated images.", no_args_is_help=True)


@app.command("pose")
def pose_fidelity(
    images: Annotated[list[Path], typer.Argument(help="PNGs made by posedraw generate (they carry their pose).")],
    detector: Annotated[str, typer.Option("--detector", help="toy (synthetic figures) or mediapipe.")] = "toy",
    json_out: Annotated[
        Path | None, typer.Option("--json", callback=writable_file, help="Also write the report as JSON.")
    ] = None,
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


@app.command("attributes")
def attribute_fidelity(
    images: Annotated[list[Path], typer.Argument(help="PNGs made by posedraw generate --prompt (they carry it).")],
    json_out: Annotated[
        Path | None, typer.Option("--json", callback=writable_file, help="Also write the report as JSON.")
    ] = None,
) -> None:
    """Prompt fidelity on toy figures: the share of images drawn with the hair colour, hair length, outfit
    and outfit colour their prompt names (read back by the toy attribute classifier at the places the
    image's pose locates; an attribute whose place is outside the picture is not scored).

    Example: posedraw eval attributes out/*.png
    """
    import torch
    from PIL import Image

    from posedraw.data.images import to_tensor
    from posedraw.errors import PosedrawError
    from posedraw.eval.attributes import attribute_accuracy, classify, load_classifier
    from posedraw.eval.fidelity import in_image_frame
    from posedraw.io import write_text_atomic
    from posedraw.pipelines.generate import read_png_metadata

    prompts, tensors, poses = [], [], []
    for path in images:
        job, options, _ = read_png_metadata(path)
        if job.pose.num_people > 1:
            people = job.pose.num_people
            raise PosedrawError(f"{path}: the attribute classifier reads single figures; this image has {people}")
        with Image.open(path) as image:
            tensors.append(to_tensor(image.convert("RGB")))
        poses.append(in_image_frame(job.pose, tensors[-1].shape[-1], tensors[-1].shape[-2]))
        prompts.append(options.get("prompt") or "")
    report = attribute_accuracy(classify(load_classifier(), torch.stack(tensors), poses), prompts)
    if not report.counts:
        raise PosedrawError("no image's prompt names a toy attribute (e.g. red_hair, long_hair, blue_dress)")
    parts = ", ".join(f"{name} {report.accuracy[name]:.3f} of {count}" for name, count in report.counts.items())
    typer.echo(f"{len(images)} images: attribute accuracy {report.mean:.3f} ({parts})")
    if json_out is not None:
        write_text_atomic(json_out, json.dumps({"images": len(images), **report.as_dict()}, indent=1) + "\n")
