"""`posedraw eval ...`: measure generated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from posedraw.cli.common import writable_dir, writable_file
from posedraw.cli.tune import ClipPretrainedOption, ClipWeightsOption

if TYPE_CHECKING:
    from posedraw.pose import Pose

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
    """Prompt fidelity on toy figures: the share of (person, attribute) pairs drawn with the hair colour, hair
    length, outfit and outfit colour the person's prompt names (read back by the toy attribute classifier at
    the places that person's pose locates; an attribute whose place is outside the picture is not scored),
    and the leakage: the share drawn as another person of the same picture asked for.

    A single figure is judged against its prompt; each figure of a scene against its own per-person prompt
    (scenes drawn without per-person prompts are skipped: nothing says which figure should show what).

    Example: posedraw eval attributes out/*.png
    """
    import torch
    from PIL import Image

    from posedraw.data.images import to_tensor
    from posedraw.errors import PosedrawError
    from posedraw.eval.attributes import classify_people, load_classifier, person_attribute_scores, scene_rows
    from posedraw.eval.fidelity import in_image_frame
    from posedraw.io import write_text_atomic
    from posedraw.pipelines.outputs import read_png_metadata

    prompts, tensors, poses, skipped = [], [], [], 0
    for path in images:
        job, options, _ = read_png_metadata(path)
        wanted = person_prompts(job.pose, options)
        if not wanted:
            skipped += 1
            continue
        with Image.open(path) as image:
            tensors.append(to_tensor(image.convert("RGB")))
        poses.append(in_image_frame(job.pose, tensors[-1].shape[-1], tensors[-1].shape[-2]))
        prompts += wanted
    if skipped:
        typer.echo(f"note: {skipped} images of several people without per-person prompts not scored")
    none = PosedrawError("no image's prompt names a toy attribute (e.g. red_hair, long_hair, blue_dress)")
    if not poses:
        raise none
    reading = classify_people(load_classifier(), torch.stack(tensors), poses)
    report = person_attribute_scores(reading, prompts, scene_rows(poses))
    if not report.scored:
        raise none
    totals = report.as_dict()
    parts = ", ".join(f"{name} {report.hits[name] / count:.3f} of {count}" for name, count in report.scored.items())
    typer.echo(f"{len(poses)} images, {len(prompts)} people: attribute accuracy {report.accuracy:.3f}, leakage "
               f"{report.leakage:.3f} ({totals['leaks']} leaks of {totals['scored']} scored; {parts})")  # fmt: skip
    if json_out is not None:
        fields = {"images": len(poses), "people": len(prompts), "skipped_images": skipped, **totals}
        write_text_atomic(json_out, json.dumps(fields, indent=1) + "\n")


def person_prompts(pose: Pose, options: dict) -> list[str]:
    """What each person of a drawing was asked for, from its recipe: the per-person prompts (the call's
    `person_prompts` option for this pose, else the pose's own); a single figure without them, the whole
    picture's prompt; a scene without them, nothing (an empty list)."""
    given = options.get("person_prompts")
    if isinstance(given, list) and len(given) == pose.num_people and all(isinstance(t, str) for t in given):
        return given
    if pose.prompts:
        return list(pose.prompts)
    return [options.get("prompt") or ""] if pose.num_people == 1 else []


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
