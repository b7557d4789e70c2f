"""`posedraw eval ...`: measure generated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import writable_dir, writable_file
from posedraw.cli.tune import ClipPretrainedOption, ClipWeightsOption

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
    from posedraw.pipelines.outputs import read_png_metadata

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
    from posedraw.pipelines.outputs import read_png_metadata

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


@app.command("report")
def report(
    folders: Annotated[list[Path], typer.Argument(help="Folders of drawings by posedraw generate or the studio.")],
    out: Annotated[Path, typer.Option("--out", callback=writable_dir, help="Folder for report.json and report.html.")],
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Folder of real images: FID and KID (or FD/KD) against them.")
    ] = None,
    detector: Annotated[
        str, typer.Option("--detector", help="toy, mediapipe, or a toy detector's weights (train pose-detector).")
    ] = "toy",
    features: Annotated[
        str, typer.Option("--features", help="With --reference: inception (FID/KID), toy-detector or clip.")
    ] = "inception",
    inception_weights: Annotated[
        Path | None,
        typer.Option("--inception-weights", help="torch-fidelity's Inception weights file (else downloaded)."),
    ] = None,
    clip: Annotated[
        str | None,
        typer.Option("--clip", help="open_clip model for the CLIP score (and --features clip), e.g. ViT-B-32."),
    ] = None,
    clip_pretrained: ClipPretrainedOption = "openai",
    clip_weights: ClipWeightsOption = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="One run per folder, side by side, with differences.")
    ] = False,
    best: Annotated[int, typer.Option("--best", min=1, help="Drawings in each best and worst row of the page.")] = 8,
) -> None:
    """The field's protocol on drawings: COCO OKS AP/AR of re-detected people, person count error, FID/KID,
    CLIP score, PCK/OKS/swaps and toy attribute accuracy, per run, pose kind and number of people.

    Without --compare, the drawings of all folders are grouped by the recipe settings that differ (guidance,
    model); with it, by folder. Writes OUT/report.json and OUT/report.html (one page that opens offline).

    Example: posedraw eval report out/guidance-1 out/guidance-2 --reference real/ --out report/
    """
    from posedraw.errors import PosedrawError
    from posedraw.eval.image_quality import NamedClip, image_features, load_extractor
    from posedraw.eval.report import Reference, build_report, check_out, load_detector, read_reference, write_report

    check_out(out, [*folders, *([reference] if reference else [])])
    load_detector(detector)  # a wrong detector fails before anything is read
    named = None
    if clip is not None:
        from posedraw.cli.tune import clip_spec
        from posedraw.models.clip import load_clip

        spec = clip_spec(clip, clip_pretrained, clip_weights)
        named = NamedClip(load_clip(spec), clip if spec.weights is None and spec.pretrained is None
                          else f"{clip} ({spec.weights or spec.pretrained})")  # fmt: skip
    chosen = None
    if reference is not None:
        extractor = load_extractor(features, inception_weights, named)
        chosen = Reference(reference, image_features(extractor, read_reference(reference)), extractor)
    elif inception_weights is not None or features != "inception":
        raise PosedrawError("--features / --inception-weights: only used with --reference DIR (real images)")
    result = build_report(folders, detector, chosen, named, compare)
    write_report(result, out, best)
    for label, run in result.data["runs"].items():
        typer.echo(f"{label}: {run_line(run['metrics'])}")
    typer.echo(f"wrote {out / 'report.html'} and {out / 'report.json'}")


def run_line(metrics: dict) -> str:
    """One run's headline numbers."""
    shown = {"AP": "ap", "AR": "ar", "PCK@0.1": "pck@0.1", "OKS": "oks", "person count error": "person_count_error",
             "attributes": "attribute_accuracy", "CLIP": "clip_score"}  # fmt: skip
    shown.update(
        {k: k for k in metrics if k.startswith(("FD_", "KD_", "fid", "kid")) and not k.endswith(("_std", "_size"))}
    )
    parts = [f"{name} {metrics[key]:.4g}" for name, key in shown.items() if metrics.get(key) is not None]
    return f"{metrics['drawings']} drawings, " + ", ".join(parts)
