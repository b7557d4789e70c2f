"""Generation jobs to files: batches of (pose, seed) through a pipeline, PNGs that carry their recipe.

Each PNG stores the pose (posedraw JSON), seed, sampler, steps, eta, guidance and model in a `posedraw`
text chunk, so `posedraw generate --from-png IMG` can draw it again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from posedraw.data.images import to_image
from posedraw.errors import CheckpointError, PosedrawError
from posedraw.io import atomic_path, save_image_atomic
from posedraw.models.transformer import Sampling
from posedraw.pipelines.code_transformer import CodeTransformerPipeline, is_code_model, load_code_pipeline
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.pose import Pose, dump_pose, pad_to_square, parse_pose, render_skeleton

METADATA_KEY = "posedraw"


@dataclass(frozen=True)
class SamplingOptions:
    sampler: str  # diffusion: sampler, steps, eta; the transformer: temperature, top_k, top_p; both: guidance
    steps: int
    eta: float = 0.0
    guidance: float = 1.0
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None


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


def load_pipeline(model: str | Path, device: str) -> KeypointLDMPipeline | CodeTransformerPipeline:
    """A diffusion pipeline folder or a code-transformer model folder, on `device`."""
    folder = Path(model)
    if is_code_model(folder):
        return load_code_pipeline(folder, device)
    if not (folder / "model_index.json").is_file():
        raise CheckpointError(
            f"{folder}: expected a pipeline folder with model_index.json (made by convert ldm or train ldm)"
        )
    logging.getLogger("diffusers").setLevel(logging.ERROR)
    diffusers_logging.disable_progress_bar()  # a bar for loading four small files is noise
    try:
        pipeline = KeypointLDMPipeline.from_pretrained(folder, use_safetensors=True)
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{folder}: not a loadable posedraw pipeline ({exc.__class__.__name__}: {exc})") from None
    finally:
        diffusers_logging.enable_progress_bar()
    return pipeline.to(device)


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


def metadata(job: Job, sampling: SamplingOptions, model: str) -> dict[str, Any]:
    return {"pose": dump_pose(job.pose), "pose_name": job.name, "seed": job.seed, "model": model, **asdict(sampling)}


def read_png_metadata(path: Path) -> tuple[Job, SamplingOptions, str]:
    """The job, sampling options and model a posedraw PNG was made with."""
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
        sampling = SamplingOptions(
            str(data["sampler"]), int(data["steps"]), float(data["eta"]), float(data["guidance"]),
            float(data.get("temperature", 1.0)), data.get("top_k"), data.get("top_p"),
        )  # fmt: skip
        return job, sampling, str(data["model"])
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


def _write_job(
    job: Job, index: int, result: Any, sampling: SamplingOptions, model: str, out: Path, extras: Outputs
) -> Path:
    stem = f"{job.name}_seed{job.seed}"
    image = to_image(result.images[index])
    path = out / f"{stem}.png"
    _save_png(image, path, metadata(job, sampling, model))
    if extras.save_latent:
        with atomic_path(out / f"{stem}.latent.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, result.vq_latents[index].float().cpu().numpy())
        if getattr(result, "codes", None) is not None:
            with atomic_path(out / f"{stem}.codes.npy") as tmp, open(tmp, "wb") as handle:
                np.save(handle, result.codes[index].cpu().numpy().astype(np.int32))
    if extras.grid:
        skeleton = render_skeleton(pad_to_square(job.pose), long_side=image.width)
        save_image_atomic(side_by_side([skeleton, image]), out / f"{stem}_grid.png")
    if extras.progress_row:
        tiles = [to_image(x0[index]) for _, x0 in result.intermediates] + [image]
        save_image_atomic(side_by_side(tiles), out / f"{stem}_progress.png")
    return path


def draw(pipeline, jobs: Sequence[Job], sampling: SamplingOptions, latents: torch.Tensor | None, x0_every: int | None):
    """One batch through either kind of model."""
    poses, seeds = [j.pose for j in jobs], [j.seed for j in jobs]
    if isinstance(pipeline, CodeTransformerPipeline):
        if latents is not None:
            raise PosedrawError("--latents: a transformer model draws codes, it has no start latents")
        if x0_every is not None:
            raise PosedrawError("--progress-row: a transformer model writes codes in raster order, it has no x0 steps")
        return pipeline(poses, seeds, Sampling(sampling.temperature, sampling.top_k, sampling.top_p, sampling.guidance))
    return pipeline(
        poses, seeds=seeds, latents=latents, sampler=sampling.sampler, steps=sampling.steps, eta=sampling.eta,
        guidance=sampling.guidance, x0_every=x0_every,
    )  # fmt: skip


def run_jobs(
    pipeline: KeypointLDMPipeline | CodeTransformerPipeline,
    jobs: Sequence[Job],
    sampling: SamplingOptions,
    model: str,
    out: Path,
    extras: Outputs,
    batch_size: int = 4,
    latents: torch.Tensor | None = None,
) -> list[Path]:
    """Run the jobs in batches and write their files; returns the PNG paths in job order."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    x0_every = max(1, sampling.steps // 8) if extras.progress_row else None
    batches = range(0, len(jobs), batch_size)
    for number, start in enumerate(batches, 1):
        if isinstance(pipeline, KeypointLDMPipeline):
            pipeline.set_progress_bar_config(desc=f"batch {number}/{len(batches)}", leave=False)
        batch = list(jobs[start : start + batch_size])
        start_latents = None if latents is None else latents[start : start + len(batch)]
        result = draw(pipeline, batch, sampling, start_latents, x0_every)
        written += [_write_job(job, i, result, sampling, model, out, extras) for i, job in enumerate(batch)]
    return written
