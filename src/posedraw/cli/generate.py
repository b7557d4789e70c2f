"""`posedraw generate`: poses in, drawings out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import DeviceOption
from posedraw.cli.options import CoordinateSpace, FrameOption, ImageIdOption, print_notes, read_options
from posedraw.cli.tune import ClipOption, ClipPretrainedOption, ClipWeightsOption, clip_spec, print_similarities


def _pose_files(poses: list[Path], pose_dir: Path | None) -> list[Path]:
    from posedraw.errors import PosedrawError

    files = list(poses)
    if pose_dir is not None:
        if not pose_dir.is_dir():
            raise PosedrawError(f"--pose-dir {pose_dir}: no such folder")
        files += sorted(pose_dir.glob("*.json"))
    return files


def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNGs (and latents, grids, progress rows).")],
    model: Annotated[
        Path | None, typer.Option("--model", help="Pipeline folder (from convert ldm or train ldm).")
    ] = None,
    pose: Annotated[list[Path] | None, typer.Option("--pose", help="Pose file in any format; repeat for more.")] = None,
    pose_dir: Annotated[Path | None, typer.Option("--pose-dir", help="Every *.json pose file of a folder.")] = None,
    num: Annotated[int, typer.Option("--num", min=1, help="Images per pose (seeds SEED, SEED+1, ...).")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="First seed.")] = 0,
    sampler: Annotated[
        str, typer.Option("--sampler", help="Diffusion: ddim, plms, ddpm, dpm++, unipc or euler.")
    ] = "dpm++",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Diffusion sampling steps.")] = 20,
    eta: Annotated[float, typer.Option("--eta", min=0.0, help="DDIM eta (0 = deterministic).")] = 0.0,
    guidance: Annotated[float, typer.Option("--guidance", help="Pose guidance scale (1 = off).")] = 1.0,
    temperature: Annotated[float, typer.Option("--temperature", help="Transformer models: softmax temperature.")] = 1.0,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=1, help="Transformer models: keep the k likeliest.")
    ] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="Transformer models: nucleus mass in (0, 1].")] = None,
    latents: Annotated[Path | None, typer.Option("--latents", help="Start latents .npy: (C,h,w) or (N,C,h,w).")] = None,
    save_latent: Annotated[bool, typer.Option("--save-latent", help="Write the final VQ latent .npy.")] = False,
    progress_row: Annotated[bool, typer.Option("--progress-row", help="Write x0 predictions left to right.")] = False,
    grid: Annotated[bool, typer.Option("--grid", help="Write pose | sample side by side.")] = False,
    from_png: Annotated[Path | None, typer.Option("--from-png", help="Redo a PNG made by generate.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per network batch.")] = 4,
    canvas: Annotated[str | None, typer.Option("--canvas", help="WIDTHxHEIGHT for pose files without one.")] = None,
    coords: Annotated[CoordinateSpace | None, typer.Option("--coords", help="Coordinates of ambiguous files.")] = None,
    image_id: ImageIdOption = None,
    frame: FrameOption = None,
    tune_prompt: Annotated[
        list[str] | None,
        typer.Option("--tune-prompt", help="Then tune each image towards 'text[:weight]' (writes latents)."),
    ] = None,
    tune_steps: Annotated[int, typer.Option("--tune-steps", min=1, help="Tuning steps (with --tune-prompt).")] = 50,
    clip: ClipOption = "ViT-B-32",
    clip_pretrained: ClipPretrainedOption = "openai",
    clip_weights: ClipWeightsOption = None,
    device: DeviceOption = "auto",
) -> None:
    """Draw characters in the given poses; optionally restyle them with CLIP (--tune-prompt).

    Example: posedraw generate --model models/keypoints-danbooru --pose pose.json --num 4 --grid --out out/
    """
    from posedraw.devices import resolve_device
    from posedraw.errors import PosedrawError
    from posedraw.pipelines.generate import Job, Outputs, SamplingOptions, load_pipeline, load_start_latents, run_jobs
    from posedraw.pose import read_pose

    if from_png is not None:
        from posedraw.pipelines.generate import read_png_metadata

        job, sampling, recorded_model = read_png_metadata(from_png)
        jobs, model = [job], model or Path(recorded_model)
    else:
        files = _pose_files(pose or [], pose_dir)
        if not files:
            raise PosedrawError("no poses: give --pose FILE (repeatable), --pose-dir DIR or --from-png IMG")
        options, notes = read_options(canvas, coords, image_id, frame), []
        poses = {f: read_pose(f, options=options, notes=notes) for f in files}
        print_notes(notes)
        jobs = [Job(poses[f], f.stem, seed + k) for f in files for k in range(num)]
        sampling = SamplingOptions(sampler, steps, eta, guidance, temperature, top_k, top_p)
    if model is None:
        from posedraw.builtin import builtin_model

        model = builtin_model()
    pipeline = load_pipeline(model, resolve_device(device))
    if from_png is None:
        _check_drawable(pipeline, poses)
    start = None if latents is None else load_start_latents(latents, len(jobs), pipeline.latent_shape)
    written = run_jobs(
        pipeline,
        jobs,
        sampling,
        str(model),
        out,
        Outputs(save_latent or bool(tune_prompt), grid, progress_row),
        batch_size,
        start,
    )
    for path in written:
        typer.echo(f"wrote {path}")
    if tune_prompt:
        _tune_written(pipeline, written, tune_prompt, tune_steps, clip_spec(clip, clip_pretrained, clip_weights), out)


def _check_drawable(pipeline, poses: dict) -> None:
    """Refuse a pose the model cannot draw before any drawing starts, naming its file."""
    from posedraw.errors import PoseError

    for path, pose in poses.items():
        try:
            pipeline.check_pose(pose)
        except PoseError as exc:
            raise PoseError(f"{path}: {str(exc).removeprefix('pose 0: ')}") from None


def _tune_written(pipeline, written: list[Path], prompts: list[str], steps: int, spec, out: Path) -> None:
    """Tune every generated image from its final latent (the same latent --save-latent writes)."""
    from posedraw.tuning.clip import TuneOptions
    from posedraw.tuning.files import load_tune_input, source_metadata
    from posedraw.tuning.prompts import parse_prompt
    from posedraw.tuning.run import TuneRequest, tune_and_write

    request = TuneRequest([parse_prompt(p) for p in prompts], TuneOptions(steps=steps), spec)
    for path in written:
        latent = load_tune_input(path.with_name(path.stem + ".latent.npy"), pipeline.vq)
        [tuned] = tune_and_write(pipeline.vq, latent, request, [path.stem], [source_metadata(path)], out)
        print_similarities(request, tuned)
