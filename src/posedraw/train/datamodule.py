"""The training samples of a stage as Lightning takes them: a LightningDataModule over a sample stream.

Each stage reads what it needs before step 1 once (its `data.py`: the cache, the latents' scale, the
held-out poses, the tags) and builds a `SampleStream`; this module hands that stream to Lightning. The
rank and the number of ranks are only known once Lightning has started the processes, so `setup` sets them
(each rank reads its own share of every batch), and a resumed run restarts the stream at its next unread
batch, so an interrupted run sees the same samples as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from posedraw.data.stream import SampleStream, stream_loader


class StreamData(L.LightningDataModule):
    """One stage's training batches: `batch_size` samples of `stream`, put together by `collate`."""

    def __init__(self, stream: SampleStream, batch_size: int, collate: Callable[[list[Any]], Any], num_workers: int):
        super().__init__()
        self.stream, self.batch_size, self.collate, self.num_workers = stream, batch_size, collate, num_workers
        self.start_step, self.pin_memory = 0, False

    def resume(self, start_step: int, pin_memory: bool) -> None:
        """Start at the batch of `start_step` (0: a new run); pin host memory for a GPU."""
        self.start_step, self.pin_memory = start_step, pin_memory

    def setup(self, stage: str) -> None:
        self.stream.rank, self.stream.ranks = self.trainer.global_rank, self.trainer.world_size
        self.stream.resume_at(self.start_step, self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return stream_loader(self.stream, self.batch_size, self.collate, self.num_workers, self.pin_memory)


__all__ = ["StreamData"]
