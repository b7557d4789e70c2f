"""The images the VQGAN stage trains on: a posedraw dataset (augmented with its poses) or an image folder,
and the fixed images of its reconstruction grids."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from posedraw.data.augment import Augmentation
from posedraw.data.images import FolderImage, ImageFolder
from posedraw.data.loader import ImagePoseSample, dataset_source
from posedraw.data.stream import ImageFiles, SampleStream
from posedraw.io import write_text_atomic
from posedraw.train.vq.config import VQRunConfig


def training_images(data: Path, config: VQRunConfig, out: Path) -> tuple[SampleStream, torch.Tensor]:
    """The training images of a posedraw dataset or an image folder, and 8 fixed ones for the grids."""
    size, seed = config.model.resolution, config.train.seed
    if (data / "dataset.json").is_file():
        source = dataset_source(data)
        plain = SampleStream(source, ImagePoseSample(size), epochs=1, shuffle_buffer=1)
        fixed = torch.stack([s["image"] for _, s in zip(range(8), plain)])
        return SampleStream(source, _ImageOnly(ImagePoseSample(size, Augmentation(min_scale=0.85))), seed=seed), fixed
    folder = ImageFolder(data, size)
    _report_skipped(folder, out)
    fixed = torch.stack([folder[i] for i in range(min(8, len(folder)))])
    return SampleStream(ImageFiles(folder.files), FolderImage(size), seed=seed), fixed


@dataclass(frozen=True)
class _ImageOnly:
    """The image of a dataset sample: first-stage training ignores the pose (but augments with it)."""

    decode: ImagePoseSample

    def __call__(self, raw: dict, rng: random.Random) -> torch.Tensor:
        return self.decode(raw, rng)["image"]


def _report_skipped(dataset: ImageFolder, out: Path) -> None:
    if dataset.skipped:
        write_text_atomic(out / "skipped_images.txt", "".join(f"{p}\n" for p in dataset.skipped))
        print(f"skipped {len(dataset.skipped)} unreadable images (listed in {out / 'skipped_images.txt'})")
