"""Streaming a posedraw dataset into training: shards split across DDP ranks and loader workers.

Each (rank, worker) reads its own shards, `shards[slot :: ranks * workers]`, so the parts are disjoint and
together complete. Shard order is shuffled per epoch with a seed shared by all ranks, and samples pass
through a shuffle buffer; augmentation happens in the workers.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from posedraw.data.augment import Augmentation, augment
from posedraw.data.images import to_tensor
from posedraw.data.shards import decode_sample, read_raw_samples, shard_urls
from posedraw.pose import resize


def assign_shards(shards: Sequence[str], rank: int, ranks: int, worker: int, workers: int) -> list[str]:
    """The shards one loader worker of one DDP rank reads: disjoint across (rank, worker), complete together."""
    slot, slots = rank * workers + worker, ranks * workers
    return list(shards[slot::slots])


def distributed_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


@dataclass
class PoseImageDataset(IterableDataset):
    """(image, pose) samples of a dataset folder or URL, resized/augmented to `size`."""

    dataset: str | Path
    size: int
    augmentation: Augmentation | None = None
    shuffle_buffer: int = 256
    seed: int = 0
    epoch: int = 0
    rank: int | None = None  # default: from torch.distributed
    ranks: int | None = None

    def __post_init__(self) -> None:
        super().__init__()
        self.shards = shard_urls(self.dataset)

    def my_shards(self) -> list[str]:
        rank, ranks = (self.rank, self.ranks) if self.rank is not None else distributed_rank()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        order = list(self.shards)
        random.Random(self.seed + self.epoch).shuffle(order)  # the same order on every rank
        if len(order) < (ranks or 1) * workers:
            warnings.warn(f"{len(order)} shards for {ranks * workers} readers: some read nothing", stacklevel=2)
        return assign_shards(order, rank, ranks or 1, worker, workers)

    def _samples(self, rng: random.Random) -> Iterator[dict[str, Any]]:
        for url in self.my_shards():
            for raw in read_raw_samples(url):
                sample = decode_sample(raw)
                image, pose = sample.image, sample.pose
                if self.augmentation is not None:
                    image, pose = augment(image, pose, self.size, rng, self.augmentation)
                elif image.size != (self.size, self.size):
                    image, pose = image.resize((self.size, self.size)), resize(pose, self.size, self.size)
                yield {"key": sample.key, "image": to_tensor(image), "pose": pose, "meta": sample.meta}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        rank = self.rank if self.rank is not None else distributed_rank()[0]
        rng = random.Random(f"{self.seed}/{self.epoch}/{rank}/{info.id if info else 0}")  # stable across runs
        buffer: list[dict[str, Any]] = []
        for sample in self._samples(rng):
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Images stacked into a tensor; poses, keys and metadata kept as lists (encoders prepare poses)."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "pose": [s["pose"] for s in samples],
        "key": [s["key"] for s in samples],
        "meta": [s["meta"] for s in samples],
    }
