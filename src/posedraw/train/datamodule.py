"""The training samples of a stage as Lightning takes them: a LightningDataModule over a sample stream.

Each stage reads what it needs before step 1 once (its `data.py`: the cache, the latents' scale, the
held-out poses, the tags) and builds a `SampleStream`; this module hands that stream to Lightning. The
rank and the number of ranks are only known once Lightning has started the processes, so `setup` sets them
(each rank reads its own share of every batch), and a resumed run restarts the stream at its next unread
batch, so an interrupted run sees the same samples as an uninterrupted one.

With a device cache (`cache_on_device`, data/device_cache.py) the whole cache moves to the training device
in `setup`, once Lightning knows that device, and the batches are gathered there in the loader's order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L

from posedraw.data import device_cache as dc
from posedraw.data.stream import SampleStream, loader_workers, stream_loader


class StreamData(L.LightningDataModule):
    """One stage's training batches: `batch_size` samples of `stream`, put together by `collate`, or
    gathered from a device cache (`cache_on_device`: auto | on | off; `prepare`: the pose encoder's host part,
    which the device cache runs once per sample instead of once per step)."""

    def __init__(
        self,
        stream: SampleStream,
        batch_size: int,
        collate: Callable[[list[Any]], Any],
        num_workers: int,
        prepare: dc.PreparePoses | None = None,
        cache_on_device: str = "off",
    ):
        super().__init__()
        self.stream, self.batch_size, self.collate, self.num_workers = stream, batch_size, collate, num_workers
        self.prepare, self.cache_on_device = prepare, cache_on_device
        self.start_step, self.pin_memory = 0, False
        self.device_batches: dc.DeviceBatches | None = None

    def resume(self, start_step: int, pin_memory: bool) -> None:
        """Start at the batch of `start_step` (0: a new run); pin host memory for a GPU."""
        self.start_step, self.pin_memory = start_step, pin_memory

    def setup(self, stage: str) -> None:
        self.stream.rank, self.stream.ranks = self.trainer.global_rank, self.trainer.world_size
        self.stream.resume_at(self.start_step, self.batch_size)
        if self.prepare is not None:  # a latent or code cache (the VQ stage reads images)
            self._choose_path(self.prepare, self.trainer.strategy.root_device)

    def _choose_path(self, prepare: dc.PreparePoses, device: Any) -> None:
        """Device cache or DataLoader (data/device_cache.py decides), said in one line on rank 0."""
        on, why = dc.device_cache_choice(self.cache_on_device, device, lambda: dc.estimated_bytes(self.stream, prepare))
        if on:
            cache = dc.DeviceCache.read(self.stream, prepare).to(device)
            self.device_batches = dc.DeviceBatches(cache, self.stream, self.batch_size, self.num_workers)
            line = f"training data: {dc.describe(cache, device)} ({why})"
        else:
            workers = loader_workers(self.stream, self.num_workers)
            line = f"training data: DataLoader, {workers} worker(s) (device cache off: {why})"
        if self.trainer.is_global_zero:
            print(line, file=sys.stderr, flush=True)

    def train_dataloader(self) -> Iterable[Any]:
        if self.device_batches is not None:
            return self.device_batches
        return stream_loader(self.stream, self.batch_size, self.collate, self.num_workers, self.pin_memory)


__all__ = ["StreamData"]
