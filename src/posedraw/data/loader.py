"""Streaming a posedraw dataset (image + pose shards) into training.

The order, the split across DDP ranks and loader workers, epochs and resuming are the stream's
(`posedraw.data.stream`); this module decodes an image and its pose and applies the keypoint-consistent
augmentation, with the sample's own random generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from posedraw.data.augment import Augmentation, augment
from posedraw.data.images import to_tensor
from posedraw.data.shards import dataset_shards, decode_sample
from posedraw.data.stream import SampleStream, TarShards
from posedraw.pose import resize


def dataset_source(dataset: str | Path) -> TarShards:
    """The shards of a dataset folder or URL with their sample counts."""
    shards = dataset_shards(dataset)
    return TarShards([url for url, _ in shards], [count for _, count in shards])


@dataclass(frozen=True)
class ImagePoseSample:
    """Decoder of dataset items: image and pose at `size` x `size`, augmented when `augmentation` is set."""

    size: int
    augmentation: Augmentation | None = None

    def __call__(self, raw: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        sample = decode_sample(raw)
        image, pose = sample.image, sample.pose
        if self.augmentation is not None:
            image, pose = augment(image, pose, self.size, rng, self.augmentation)
        elif image.size != (self.size, self.size):
            image, pose = image.resize((self.size, self.size)), resize(pose, self.size, self.size)
        return {"key": sample.key, "image": to_tensor(image), "pose": pose, "meta": sample.meta}


def dataset_stream(
    dataset: str | Path,
    size: int,
    augmentation: Augmentation | None = None,
    seed: int = 0,
    epochs: int | None = None,
    shuffle_buffer: int = 256,
    rank: int = 0,
    ranks: int = 1,
) -> SampleStream:
    """(image, pose) samples of a dataset, reshuffled every epoch (endless unless `epochs`)."""
    return SampleStream(
        dataset_source(dataset),
        ImagePoseSample(size, augmentation),
        seed=seed,
        epochs=epochs,
        shuffle_buffer=shuffle_buffer,
        rank=rank,
        ranks=ranks,
    )


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Images stacked into a tensor; poses, keys and metadata kept as lists (encoders prepare poses)."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "pose": [s["pose"] for s in samples],
        "key": [s["key"] for s in samples],
        "meta": [s["meta"] for s in samples],
    }
