"""`posedraw generate`: poses in, drawings out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import CompileOption, DeviceOption, writable_dir
from posedraw.cli.options import CoordinateSpace, FrameOption, ImageIdOption, print_notes, read_options
from posedraw.cli.tune import ClipOption, ClipPretrainedOption, ClipWeightsOption, clip_spec, print_similarities


def _pose_files(poses: list[Path], pose_dir: Path | None) -> list[Path]:
    from posedraw.errors import PosedrawError

    files = list(poses)
    if pose_dir is not None:
        if pose_dir.exists() and not pose_dir.is_dir():
            raise PosedrawError(f"--pose-dir {pose_dir}: is a file; expected a folder of pose files (or --pose FILE)")
        if not pose_dir.is_dir():
            raise PosedrawError(f"--pose-dir {pose_dir}: no such folder")
        found = sorted(pose_dir.glob("*.json"))
        if not found:
            raise PosedrawError(f"--pose-dir {pose_dir}: no *.json in {pose_dir}")
        files += found
    return files


def output_names(files: list[Path]) -> dict[Path, str]:
    """A distinct file-name stem per pose file: its stem, or with its folder's name when two files of
    different folders share a stem (a/pose.json, b/pose.json -> a_pose, b_pose), so no output overwrites
    another; the same file given twice is drawn once."""
    counts: dict[str, int] = {}
    for path in dict.fromkeys(files):
        counts[path.stem] = counts.get(path.stem, 0) + 1
    names: dict[Path, str] = {}
    for path in dict.fromkeys(files):
        name = path.stem if counts[path.stem] == 1 else f"{path.parent.name or 'pose'}_{path.stem}"
        while name in names.values():
            name += "_"
        names[path] = name
    return names


def generate(
    out: Annotated[
        Path,
        typer.Option("--out", callback=writable_dir, help="Folder for the PNGs (and latents, grids, progress rows)."),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Model folder (convert ldm, train ldm, train transformer), or builtin:transformer."
        ),
    ] = None,
    pose: Annotated[list[Path] | None, typer.Option("--pose", help="Pose file in any format; repeat for more.")] = None,
    pose_dir: Annotated[Path | None, typer.Option("--pose-dir", help="Every *.json pose file of a folder.")] = None,
    num: Annotated[int, typer.Option("--num", min=1, help="Images per pose (seeds SEED, SEED+1, ...).")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="First seed.")] = 0,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="Diffusion: ddim, plms, ddpm, dpm++ (default), unipc or euler.")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Diffusion sampling steps (default 20).")] = None,
    eta: Annotated[float | None, typer.Option("--eta", help="DDIM eta (0 = deterministic, the default).")] = None,
    guidance: Annotated[float | None, typer.Option("--guidance", help="Pose guidance scale (1 = off).")] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Transformer: softmax temperature (default 1).")
    ] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Transformer: keep the k likeliest.")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="Transformer: nucleus mass in (0, 1].")] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            help='What to draw, e.g. "red hair, blue dress" (models with text). With | one prompt per person, in '
            'the order `posedraw pose show` lists: "red hair | blonde hair"; these replace the pose file\'s own '
            "per-person prompts (without |, the file's are used).",
        ),
    ] = None,
    scene_prompt: Annotated[
        str | None,
        typer.Option("--scene-prompt", help="The whole picture's prompt next to per-person prompts (--prompt with |)."),
    ] = None,
    negative_prompt: Annotated[
        str | None,
        typer.Option("--negative-prompt", help="What not to draw (models with text); with | one per person."),
    ] = None,
    text_guidance: Annotated[
        float | None, typer.Option("--text-guidance", help="Text guidance scale (1 = off; models with text).")
    ] = None,
    latents: Annotated[Path | None, typer.Option("--latents", help="Start latents .npy: (C,h,w) or (N,C,h,w).")] = None,
    save_latent: Annotated[
        bool, typer.Option("--save-latent/--no-save-latent", metavar="", help="Write the final VQ latent .npy.")
    ] = False,
    progress_row: Annotated[
        bool,
        typer.Option(
            "--progress-row/--no-progress-row", metavar="", help="Write the drawing as it forms, left to right."
        ),
    ] = False,
    grid: Annotated[
        bool, typer.Option("--grid/--no-grid", metavar="", help="Write pose | sample side by side.")
    ] = False,
    from_png: Annotated[Path | None, typer.Option("--from-png", help="Redo a PNG made by generate.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per network batch.")] = 4,
    canvas: Annotated[str | None, typer.Option("--canvas", help="WIDTHxHEIGHT for pose files without one.")] = None,
    coords: Annotated[CoordinateSpace | None, typer.Option("--coords", help="Coordinates of ambiguous files.")] = None,
    image_id: ImageIdOption = None,
    frame: FrameOption = None,
    tune_prompt: Annotated[
        list[str] | None,
        typer.Option("--tune-prompt", help="Then tune each image towards 'text[:weight]'."),
    ] = None,
    tune_steps: Annotated[int, typer.Option("--tune-steps", min=1, help="Tuning steps (with --tune-prompt).")] = 50,
    clip: ClipOption = "ViT-B-32",
    clip_pretrained: ClipPretrainedOption = "openai",
    clip_weights: ClipWeightsOption = None,
    device: DeviceOption = "auto",
    compile: CompileOption = False,
) -> None:
    """Draw characters in the given poses; optionally restyle them with CLIP (--tune-prompt).

    Example: posedraw generate --model models/keypoints-danbooru --pose pose.json --num 4 --grid --out out/

    Per-person prompts (models trained with them): --prompt "red hair, blue dress | blonde hair" --scene-prompt
    "beach"; the command line's replace the pose file's own, and the order is `posedraw pose show`'s.
    """
    from posedraw.devices import resolve_device
    from posedraw.errors import PosedrawError
    from posedraw.pipelines import load_pipeline
    from posedraw.pipelines.drawing import seed_run
    from posedraw.pipelines.outputs import Job, Outputs, load_start_latents, run_jobs
    from posedraw.pose import read_pose
    from posedraw.pose.prompts import split_prompt

    wanted = split_prompt(prompt or "", scene_prompt or "", "--prompt")
    unwanted = split_prompt(negative_prompt or "", "", "--negative-prompt")
    given = {"sampler": sampler, "steps": steps, "eta": eta, "guidance": guidance, "temperature": temperature,
             "top_k": top_k, "top_p": top_p, "prompt": wanted.scene or None, "negative_prompt": unwanted.scene or None,
             "person_negative_prompts": unwanted.people or None, "text_guidance": text_guidance}  # fmt: skip
    options = {name: value for name, value in given.items() if value is not None}  # an empty prompt is none
    notes: list[str] = []
    if from_png is not None:
        from posedraw.pipelines.outputs import read_png_metadata

        job, recorded, recorded_model = read_png_metadata(from_png)
        model, poses = model or recorded_model, {from_png: job.pose}
    else:
        seeds = seed_run(seed, num)
        files = list(dict.fromkeys(_pose_files(pose or [], pose_dir)))
        if not files:
            raise PosedrawError("no poses: give --pose FILE (repeatable), --pose-dir DIR or --from-png IMG")
        read = read_options(canvas, coords, image_id, frame)
        poses = {f: read_pose(f, options=read, notes=notes) for f in files}
    poses = _with_person_prompts(poses, wanted.people, unwanted.people)
    if from_png is not None:
        jobs = [Job(poses[from_png], job.name, job.seed)]
    else:
        names = output_names(files)
        jobs = [Job(poses[f], names[f], s) for f in files for s in seeds]
    pipeline = load_pipeline(model, resolve_device(device), notes)
    if compile:
        pipeline.accelerate(compile=True)
    print_notes(notes)
    if from_png is not None:  # the recipe, less options of earlier versions this model does not take
        options = {**{k: v for k, v in recorded.items() if k in pipeline.options}, **options}
    people = [p.prompts for p in poses.values()]  # the poses' own: refused like given ones by a model without
    pipeline.check_options({**options, **({"latents": latents} if latents is not None else {}),
                            **({"person_prompts": people} if any(people) else {})})  # fmt: skip
    _check_drawable(pipeline, poses)
    texts = ("prompt", "negative_prompt", "person_negative_prompts")
    _warn_unknown_words(pipeline, [options.get(name) for name in texts] + people)
    start = None if latents is None else load_start_latents(latents, len(jobs), pipeline.latent_shape)
    tune = _tuner(pipeline, tune_prompt, tune_steps, clip_spec(clip, clip_pretrained, clip_weights), out)

    def written(path: Path, latent) -> None:
        typer.echo(f"wrote {path}")
        if tune is not None:
            tune(path, latent)

    extras = Outputs(save_latent, grid, progress_row)
    run_jobs(pipeline, jobs, options, model or "builtin", out, extras, batch_size, start, on_written=written)


def _with_person_prompts(poses: dict, wanted: tuple[str, ...], unwanted: tuple[str, ...]) -> dict:
    """The poses with the command line's per-person prompts (they replace a file's own), after checking that
    each file holds as many people as prompts were given (per-person negative prompts too)."""
    from posedraw.pose.prompts import check_person_count

    for path, pose in poses.items():
        check_person_count(wanted, pose.num_people, "--prompt", str(path))
        check_person_count(unwanted, pose.num_people, "--negative-prompt", str(path))
    return {path: pose.replace(prompts=wanted) if wanted else pose for path, pose in poses.items()}


def _check_drawable(pipeline, poses: dict) -> None:
    """Refuse a pose the model cannot draw before any drawing starts, naming its file."""
    from posedraw.errors import PoseError

    for path, pose in poses.items():
        try:
            pipeline.check_pose(pose)
        except PoseError as exc:
            raise PoseError(f"{path}: {str(exc).removeprefix('pose 0: ')}") from None


def _texts(value) -> list[str]:
    """Every non-empty text of a prompt, a list of per-person prompts or a list of such lists."""
    if isinstance(value, str):
        return [value] if value else []
    return [text for item in value or () for text in _texts(item)]


def _warn_unknown_words(pipeline, prompts: list) -> None:
    """One warning line for the words of the prompts the model does not know (they are ignored)."""
    unknown = pipeline.unknown_prompt_words(_texts(prompts))
    if unknown:
        typer.echo(f"warning: tags this model does not know, ignored: {', '.join(unknown)}", err=True)


def _tuner(pipeline, prompts: list[str] | None, steps: int, spec, out: Path):
    """With --tune-prompt, a function that tunes a drawing from its final latent (the one --save-latent
    writes, handed over in memory) as soon as it is written; None without."""
    if not prompts:
        return None
    from posedraw.tuning.clip import TuneOptions
    from posedraw.tuning.files import source_metadata
    from posedraw.tuning.prompts import parse_prompt
    from posedraw.tuning.run import TuneRequest, tune_and_write

    request = TuneRequest([parse_prompt(p) for p in prompts], TuneOptions(steps=steps), spec)

    def tune(path: Path, latent) -> None:
        [tuned] = tune_and_write(pipeline.vq, latent, request, [path.stem], [source_metadata(path)], out)
        print_similarities(request, tuned)

    return tune
