"""Generation jobs to files: batches of (pose, seed) through a pipeline, PNGs that carry their recipe.

Each PNG stores the pose (posedraw JSON), seed, model and every option of the generator (the given ones and
the defaults it used) in a `posedraw` text chunk, so `posedraw generate --from-png IMG` can draw it again.
Per-person prompts are kept through the pose (each person's "prompt"), per-person negative prompts as the
`person_negative_prompts` option.
Any generator works: they share one call shape (posedraw.pipelines.drawing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from posedraw.data.images import to_image
from posedraw.errors import PosedrawError
from posedraw.io import atomic_path, save_image_atomic
from posedraw.pipelines.drawing import Drawing, DrawingPipeline
from posedraw.pose import Pose, dump_pose, pad_to_square, parse_pose, render_skeleton

METADATA_KEY = "posedraw"


@dataclass(frozen=True)
class Job:
    pose: Pose
    name: str  # file-name stem of the pose
    seed: int


@dataclass(frozen=True)
class Outputs:
    """Which extra files to write next to each PNG."""

    save_latent: bool = False
    grid: bool = False
    progress_row: bool = False


def load_start_latents(path: Path, count: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Start latents from .npy: one (C, h, w) for every image, or (count, C, h, w)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PosedrawError(f"{path}: not a readable .npy array ({exc.__class__.__name__})") from None
    if array.shape == shape:
        array = np.broadcast_to(array, (count, *shape))
    if array.shape != (count, *shape):
        raise PosedrawError(f"{path}: expected a latent of shape {shape} or {(count, *shape)}, got {array.shape}")
    if not np.isfinite(array).all():
        raise PosedrawError(f"{path}: expected finite numbers")
    return torch.from_numpy(np.array(array, dtype=np.float32))  # a writable copy (broadcasts are read-only views)


#: options of earlier versions' PNGs, stored next to the pose instead of under "options"
_EARLIER_OPTIONS = ("sampler", "steps", "eta", "guidance", "temperature", "top_k", "top_p")


def metadata(job: Job, options: dict[str, Any], model: str) -> dict[str, Any]:
    """The recipe of one image: its pose, seed, model and options (start latents are not recorded)."""
    recorded = {k: v for k, v in options.items() if k not in ("latents", "progress_row")}
    return {"pose": dump_pose(job.pose), "pose_name": job.name, "seed": job.seed, "model": model, "options": recorded}


def read_png_metadata(path: Path) -> tuple[Job, dict[str, Any], str]:
    """The job, options and model a posedraw PNG was made with (PNGs of earlier versions too: their
    options may include ones the model does not take, which the caller drops)."""
    if not Path(path).exists():
        raise PosedrawError(f"{path}: no such file")
    try:
        with Image.open(path) as image:
            text = image.text.get(METADATA_KEY)  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        raise PosedrawError(f"{path}: not a readable PNG") from None
    if text is None:
        raise PosedrawError(f"{path}: no posedraw metadata (was it made by posedraw generate?)")
    try:
        data = json.loads(text)
        job = Job(parse_pose(data["pose"], "posedraw"), str(data["pose_name"]), int(data["seed"]))
        options = data["options"] if "options" in data else {k: data[k] for k in _EARLIER_OPTIONS if k in data}
        if not isinstance(options, dict):
            raise TypeError("options is not a mapping")
        return job, options, str(data["model"])
    except (KeyError, TypeError, ValueError, PosedrawError) as exc:
        raise PosedrawError(f"{path}: damaged posedraw metadata ({exc})") from None


def _save_png(image: Image.Image, path: Path, info: dict[str, Any]) -> None:
    png = PngInfo()
    png.add_text(METADATA_KEY, json.dumps(info))
    save_image_atomic(image, path, pnginfo=png)


def side_by_side(tiles: Sequence[Image.Image]) -> Image.Image:
    row = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
    x = 0
    for tile in tiles:
        row.paste(tile, (x, 0))
        x += tile.width
    return row


def pose_sample_grid(poses: Sequence[Pose], images: torch.Tensor) -> Image.Image:
    """Rows of conditioning pose | sample."""
    rows = []
    for pose, image in zip(poses, images):
        sample = to_image(image)
        rows.append(side_by_side([render_skeleton(pad_to_square(pose), long_side=sample.width), sample]))
    grid = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    for i, row in enumerate(rows):
        grid.paste(row, (0, i * rows[0].height))
    return grid


def write_job(job: Job, index: int, result: Drawing, options: dict[str, Any], model: str, out: Path,
              extras: Outputs) -> Path:  # fmt: skip
    stem = f"{job.name}_seed{job.seed}"
    image = to_image(result.images[index])
    path = out / f"{stem}.png"
    _save_png(image, path, metadata(job, options, model))
    if extras.save_latent:
        _save_npy(out / f"{stem}.latent.npy", result.vq_latents[index].float().cpu().numpy())
        if result.codes is not None:
            _save_npy(out / f"{stem}.codes.npy", result.codes[index].cpu().numpy().astype(np.int32))
    if extras.grid:
        skeleton = render_skeleton(pad_to_square(job.pose), long_side=image.width)
        save_image_atomic(side_by_side([skeleton, image]), out / f"{stem}_grid.png")
    if extras.progress_row:
        tiles = [to_image(x0[index]) for _, x0 in result.intermediates] + [image]
        save_image_atomic(side_by_side(tiles), out / f"{stem}_progress.png")
    return path


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def run_jobs(
    pipeline: DrawingPipeline,
    jobs: Sequence[Job],
    options: dict[str, Any],
    model: str,
    out: Path,
    extras: Outputs,
    batch_size: int = 4,
    latents: torch.Tensor | None = None,
    on_written: Callable[[Path, torch.Tensor], None] | None = None,
) -> list[Path]:
    """Run the jobs in batches through any generator and write their files; returns the PNG paths in job
    order. `options` are the generator's (checked by the caller); `latents` start latents, one per job.

    `on_written(png, latent)` is called as each PNG is written, with its final VQ latent (1, C, h, w) on the
    CPU: what `--tune-prompt` tunes, handed over in memory, whether or not `--save-latent` writes it."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    recorded = pipeline.resolved_options(options)
    batches = range(0, len(jobs), batch_size)
    for number, start in enumerate(batches, 1):
        pipeline.set_progress_bar_config(desc=f"batch {number}/{len(batches)}", leave=False)
        batch = list(jobs[start : start + batch_size])
        extra = {} if latents is None else {"latents": latents[start : start + len(batch)]}
        result = pipeline([j.pose for j in batch], seeds=[j.seed for j in batch], **options,
                          progress_row=extras.progress_row, **extra)  # fmt: skip
        for i, job in enumerate(batch):
            written.append(write_job(job, i, result, recorded, model, out, extras))
            if on_written is not None:
                on_written(written[-1], result.vq_latents[i][None].float().cpu())
    return written
