"""`posedraw data ...`: build, inspect and cache training data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import DeviceOption, vq_model, writable_dir

app = typer.Typer(
    help="Datasets: synthetic figures, real data ingestion, reports, pose detection, latent cache.",
    no_args_is_help=True,
)

ShardIndex = Annotated[int, typer.Option("--shard-index", min=0, help="This machine's part (0-based).")]
NumShards = Annotated[int, typer.Option("--num-shards", min=1, help="Machines sharing the build.")]
Workers = Annotated[int, typer.Option("--workers", min=0, help="Parallel worker processes (0: one per CPU).")]
PerShard = Annotated[int, typer.Option("--per-shard", min=1, help="Inputs per shard.")]
RebuildOption = Annotated[
    bool,
    typer.Option(
        "--rebuild/--no-rebuild", metavar="", help="Rebuild every shard (changed inputs or filters are rebuilt anyway)."
    ),
]


def _workers(requested: int) -> int:
    return requested or max(1, os.cpu_count() or 1)


def _print_report(report) -> None:
    for line in report.lines():
        typer.echo(line)


@app.command()
def toy(
    out: Annotated[Path, typer.Option("--out", callback=writable_dir, help="Dataset folder to write.")],
    num: Annotated[int, typer.Option("--num", min=1, help="Number of figures.")] = 1000,
    size: Annotated[int, typer.Option("--size", min=16, help="Image side in pixels.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first figure (figure i uses seed + i).")] = 0,
    max_people: Annotated[
        int, typer.Option("--max-people", min=1, max=3, help="Scenes of 1 to N figures side by side (N <= 3).")
    ] = 1,
    per_shard: PerShard = 500,
    workers: Workers = 0,
    rebuild: RebuildOption = False,
) -> None:
    """Write a dataset of synthetic anime-like figures with their true poses, tags and captions.

    Example: posedraw data toy --num 2000 --size 64 --max-people 2 --out data/toy
    """
    from posedraw.data.building import ShardPlan, build_dataset
    from posedraw.data.toy import ToyMaker

    plan = ShardPlan(list(range(seed, seed + num)), per_shard)
    report = build_dataset(
        out,
        plan,
        ToyMaker(size, max_people),
        size,
        "png",
        workers=_workers(workers),
        extra_index={"source": "toy"},
        rebuild=rebuild,
    )
    _print_report(report)


@app.command()
def build(
    images: Annotated[Path, typer.Option("--images", help="Image folder (recursive; Danbooru layouts work).")],
    keypoints: Annotated[Path, typer.Option("--keypoints", help="Keypoint folder: <id>.json in any pose format.")],
    out: Annotated[Path, typer.Option("--out", callback=writable_dir, help="Dataset folder to write.")],
    metadata: Annotated[Path | None, typer.Option("--metadata", help="Danbooru metadata (JSON lines).")] = None,
    size: Annotated[int, typer.Option("--size", min=16, help="Square side of the prepared images.")] = 256,
    min_visible: Annotated[int, typer.Option("--min-visible", help="Fewest visible joints to keep.")] = 10,
    rating: Annotated[list[str] | None, typer.Option("--rating", help="Keep only this rating (repeatable).")] = None,
    include_tag: Annotated[list[str] | None, typer.Option("--include-tag", help="Keep only these tags.")] = None,
    exclude_tag: Annotated[list[str] | None, typer.Option("--exclude-tag", help="Drop these tags.")] = None,
    no_skeleton_check: Annotated[
        bool, typer.Option("--no-skeleton-check", metavar="", help="Keep implausible skeletons.")
    ] = False,
    no_border_check: Annotated[
        bool, typer.Option("--no-border-check", metavar="", help="Keep large uniform borders.")
    ] = False,
    image_format: Annotated[str, typer.Option("--image-format", help="jpg (quality 95) or png.")] = "jpg",
    clip_wanted: Annotated[list[str] | None, typer.Option("--clip-wanted", help="CLIP filter: wanted content.")] = None,
    clip_unwanted: Annotated[list[str] | None, typer.Option("--clip-unwanted", help="CLIP filter: unwanted.")] = None,
    clip_threshold: Annotated[float, typer.Option("--clip-threshold", help="CLIP filter: lowest score kept.")] = 0.0,
    clip: Annotated[str, typer.Option("--clip", help="open_clip model name.")] = "ViT-B-32",
    clip_pretrained: Annotated[str, typer.Option("--clip-pretrained", help="open_clip weights tag.")] = "openai",
    clip_weights: Annotated[str | None, typer.Option("--clip-weights", help="Local CLIP checkpoint.")] = None,
    per_shard: PerShard = 1000,
    shard_index: ShardIndex = 0,
    num_shards: NumShards = 1,
    workers: Workers = 0,
    rebuild: RebuildOption = False,
) -> None:
    """Build a training set from images and keypoint files matched by id, with filters.

    Example: posedraw data build --images danbooru2021/512px --keypoints keypoints/ --metadata meta.jsonl --out data/kp
    """
    from posedraw.data.building import ShardPlan, build_dataset
    from posedraw.data.filters import FilterConfig
    from posedraw.data.ingest import RealMaker, find_inputs, learn_statistics
    from posedraw.errors import PosedrawError

    if image_format not in ("jpg", "png"):
        raise PosedrawError(f"--image-format: expected jpg or png, got {image_format!r}")
    items, orphans = find_inputs(images, keypoints, metadata)
    config = FilterConfig(
        min_visible_joints=min_visible,
        ratings=tuple(rating or ()),
        include_tags=tuple(include_tag or ()),
        exclude_tags=tuple(exclude_tag or ()),
        check_skeleton=not no_skeleton_check,
        check_borders=not no_border_check,
    )
    clip_filter = None
    if clip_wanted:
        from posedraw.data.clip_filter import ClipFilter
        from posedraw.models.clip import ClipSpec, cached_clip

        spec = ClipSpec(clip, clip_pretrained, clip_weights)
        cached_clip(spec)  # fail early (missing weights) before any work
        clip_filter = ClipFilter(tuple(clip_wanted), tuple(clip_unwanted or ()), clip_threshold, spec)
    maker = RealMaker(size, config, learn_statistics(items), image_format, clip_filter)
    report = build_dataset(
        out,
        ShardPlan(items, per_shard),
        maker,
        size,
        image_format,
        shard_index,
        num_shards,
        _workers(workers),
        extra_index={"source": str(images)},
        rebuild=rebuild,
    )
    _print_report(report)
    if orphans:
        typer.echo(f"keypoint files without an image: {orphans}")


@app.command()
def stats(
    manifest: Annotated[Path, typer.Argument(help="manifest.jsonl of a dataset.")],
    out: Annotated[
        Path, typer.Option("--out", callback=writable_dir, help="Folder for the report (PNG plots + summary.json).")
    ],
) -> None:
    """Plot joint positions, visible-joint counts, skip reasons and tags of a dataset.

    Example: posedraw data stats data/kp/manifest.jsonl --out reports/kp
    """
    from posedraw.data.stats import write_report

    summary = write_report(manifest, out)
    typer.echo(f"{summary['inputs']} inputs, {summary['kept']} kept; report in {out}")


@app.command("detect-poses")
def detect_poses(
    images: Annotated[Path, typer.Argument(help="Image folder (recursive).")],
    out: Annotated[Path, typer.Option("--out", callback=writable_dir, help="Folder for <id>.json pose files.")],
) -> None:
    """Detect poses for images without keypoints (MediaPipe); resumable.

    Example: posedraw data detect-poses photos/ --out keypoints/
    """
    from posedraw.data.detect_poses import detect_folder

    report = detect_folder(images, out)
    typer.echo(
        f"{report.images} images: {report.detected} detected, {report.already_done} already done, "
        f"{report.failed} without a person (see {out / 'detect_failures.jsonl'})"
    )


@app.command("cache-latents")
def cache_latents(
    dataset: Annotated[str, typer.Argument(help="Dataset folder or URL.")],
    model: Annotated[Path, typer.Option("--model", callback=vq_model, help="Model folder with the VQ (vq/).")],
    out: Annotated[Path, typer.Option("--out", callback=writable_dir, help="Cache folder to write.")],
    latents: Annotated[
        bool, typer.Option("--latents/--no-latents", metavar="", help="Cache pre-quantization latents.")
    ] = True,
    codes: Annotated[bool, typer.Option("--codes/--no-codes", metavar="", help="Cache code indices.")] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    device: DeviceOption = "auto",
) -> None:
    """Encode a dataset once with a VQ model (both orientations), for diffusion and transformer training.

    Example: posedraw data cache-latents data/toy --model runs/vq-toy/model --out data/toy-latents
    """
    from posedraw.data.latents import cache_dataset
    from posedraw.devices import resolve_device
    from posedraw.models.vq import load_vq

    index = cache_dataset(dataset, load_vq(model, resolve_device(device)), out, latents, codes, batch_size)
    typer.echo(f"wrote {out}: {len(index['shards'])} shards, latent {tuple(index['latent_shape'])}")
