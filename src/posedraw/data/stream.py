"""Training data as a stream: every source (tar shards, an image folder) read by the plan in `order`.

A `SampleStream` pairs a source (which raw items exist, and how to read one shard of them) with a decoder
(raw item -> training sample). It runs for a number of epochs or without end (training stops at a step
count, so an endless stream never runs dry on one rank while another waits for it), reshuffles every epoch,
gives each DDP rank and loader worker its own disjoint slice, and can start at any batch of a run: a resumed
run reads exactly the samples an uninterrupted one would have read next.

Augmentation randomness comes from the sample's place in the plan (seed, epoch, shard, position), never from
a process's global state, so it does not depend on the number of workers or on interruptions.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from posedraw.data.order import SampleRef, batches_of_worker, reader_plan, worker_part
from posedraw.data.shards import read_raw_samples
from posedraw.errors import DataError


class Source(Protocol):
    """Raw items grouped in shards; a shard is read as a whole (a tar file, a run of image paths)."""

    counts: list[int]

    def read(self, shard: int) -> Sequence[Any]: ...

    def name(self, shard: int) -> str: ...


@dataclass
class TarShards:
    """Tar shards (local paths or fsspec URLs) with their sample counts; raw items are {ext: bytes} dicts."""

    urls: list[str]
    counts: list[int]

    def read(self, shard: int) -> Sequence[dict[str, Any]]:
        items = list(read_raw_samples(self.urls[shard]))
        if len(items) != self.counts[shard]:
            raise DataError(f"{self.urls[shard]}: {len(items)} samples, the index says {self.counts[shard]}")
        return items

    def name(self, shard: int) -> str:
        return self.urls[shard]


@dataclass
class ImageFiles:
    """A list of image files cut into runs of `per_shard` (a shard is only a unit of the plan here)."""

    paths: list[Path]
    per_shard: int = 1000
    counts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = [len(self.paths[i : i + self.per_shard]) for i in range(0, len(self.paths), self.per_shard)]

    def read(self, shard: int) -> Sequence[Path]:
        return self.paths[shard * self.per_shard : (shard + 1) * self.per_shard]

    def name(self, shard: int) -> str:
        return f"{self.paths[shard * self.per_shard].parent} (files {shard * self.per_shard}..)"


#: raw item, its random generator -> a training sample (a dict, or a tensor)
Decoder = Callable[[Any, random.Random], Any]


def sample_rng(seed: int, epoch: int, ref: SampleRef) -> random.Random:
    """The augmentation randomness of one sample in one epoch (independent of ranks, workers, resumes)."""
    return random.Random(f"{seed}/{epoch}/{ref[0]}/{ref[1]}")


@dataclass
class SampleStream(IterableDataset):
    """Samples of `source` decoded by `decode`, in the plan's order; see the module docstring.

    `rank`/`ranks` must be set by the caller for DDP (loader workers cannot ask torch.distributed);
    `resume_at(batches, batch_size)` makes the next iteration start after a run's first `batches` batches.
    """

    source: Source
    decode: Decoder
    seed: int = 0
    shuffle_buffer: int = 256
    epochs: int | None = None  # None: endless
    epoch: int = 0  # the first epoch
    rank: int = 0
    ranks: int = 1
    skip_batches: int = 0
    batch_size: int = 1

    def __post_init__(self) -> None:
        super().__init__()
        if sum(self.source.counts) < self.ranks:
            raise DataError(f"{sum(self.source.counts)} samples cannot feed {self.ranks} ranks")

    def resume_at(self, batches: int, batch_size: int) -> None:
        self.skip_batches, self.batch_size = batches, batch_size

    def samples_per_epoch(self) -> int:
        """Samples one rank reads per epoch (all its workers together)."""
        return sum(self.source.counts) // self.ranks

    def worker_share(self, worker: int, workers: int) -> int:
        """Samples one loader worker reads per epoch (the length of its plan, without computing it)."""
        return len(worker_part(range(self.samples_per_epoch()), worker, workers))

    def plan(self, epoch: int, worker: int = 0, workers: int = 1) -> list[SampleRef]:
        return reader_plan(
            self.source.counts, self.seed, epoch, self.rank, self.ranks, worker, workers, self.shuffle_buffer
        )

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        for epoch, plan in self.planned(info.id if info else 0, info.num_workers if info else 1):
            yield from self._read(plan, epoch)

    def planned(self, worker_id: int, workers: int) -> Iterator[tuple[int, list[SampleRef]]]:
        """(epoch, the samples still to read in it) of loader worker `worker_id`, in reading order: what
        `__iter__` decodes, and what a device-resident cache gathers without decoding (data/device_cache.py)."""
        # the loader asks its workers in turn starting with worker 0, so after `skip_batches` batches the
        # worker that made the next one plays worker 0's part
        worker = (worker_id + self.skip_batches) % workers
        skip = batches_of_worker(self.skip_batches, worker, workers) * self.batch_size
        share = self.worker_share(worker, workers)
        if share == 0:  # more workers than samples: this one has nothing to read, in any epoch
            return
        epoch = self.epoch + skip // share  # whole epochs are skipped without planning them
        skip %= share
        while self.epochs is None or epoch < self.epoch + self.epochs:
            yield epoch, self.plan(epoch, worker, workers)[skip:]
            skip = 0
            epoch += 1

    def _read(self, plan: Sequence[SampleRef], epoch: int) -> Iterator[Any]:
        """Decode the planned samples in order, reading each needed shard once and keeping only what is
        still to come from it."""
        pending: dict[int, dict[int, Any]] = {}
        wanted: dict[int, set[int]] = {}
        for shard, position in plan:
            wanted.setdefault(shard, set()).add(position)
        for ref in plan:
            shard, position = ref
            if shard not in pending:
                items = self.source.read(shard)
                pending[shard] = {p: items[p] for p in wanted.pop(shard)}
            raw = pending[shard].pop(position)
            if not pending[shard]:
                del pending[shard]
            try:
                sample = self.decode(raw, sample_rng(self.seed, epoch, ref))
            except DataError:
                raise
            except Exception as exc:  # a damaged member: name it instead of failing deep in numpy or PIL
                key = raw.get("__key__", position) if isinstance(raw, dict) else raw
                raise DataError(
                    f"{self.source.name(shard)}: sample {key} is unreadable ({exc.__class__.__name__})"
                ) from None
            yield sample


def ignore_interrupts(worker_id: int) -> None:
    """Loader workers leave Ctrl-C and SIGTERM to the training process, which stops them after saving."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def loader_workers(stream: SampleStream, num_workers: int) -> int:
    """The loader workers `stream_loader` starts: at most one per sample of an epoch, so none idles and the
    workers' turns stay regular."""
    return min(num_workers, stream.samples_per_epoch())


def loader_batches(
    stream: SampleStream, batch_size: int, num_workers: int = 0
) -> Iterator[list[tuple[SampleRef, int]]]:
    """The (sample, epoch) pairs of each batch `stream_loader(stream, batch_size, ..., num_workers)` yields,
    in order, without reading a sample: each worker cuts its own samples into batches (a last short one is
    dropped), and the loader takes the batches from its workers in turn, passing over a worker that ran dry."""
    workers = loader_workers(stream, num_workers)
    sources = [_worker_batches(stream, worker, max(workers, 1), batch_size) for worker in range(max(workers, 1))]
    while sources:
        for source in list(sources):
            batch = next(source, None)
            if batch is None:
                sources.remove(source)
            else:
                yield batch


def _worker_batches(
    stream: SampleStream, worker: int, workers: int, batch_size: int
) -> Iterator[list[tuple[SampleRef, int]]]:
    """One loader worker's batches of (sample, epoch), batches running across epochs as its samples do."""
    batch: list[tuple[SampleRef, int]] = []
    for epoch, plan in stream.planned(worker, workers):
        for ref in plan:
            batch.append((ref, epoch))
            if len(batch) == batch_size:
                yield batch
                batch = []


def stream_loader(
    stream: SampleStream, batch_size: int, collate: Callable, num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader over a stream: batches of `batch_size`, workers that ignore interrupts (at most one
    worker per sample of an epoch: `loader_workers`)."""
    num_workers = loader_workers(stream, num_workers)
    return DataLoader(
        stream,
        batch_size=batch_size,
        collate_fn=collate,
        num_workers=num_workers,
        drop_last=True,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=ignore_interrupts if num_workers > 0 else None,
    )


__all__ = [
    "Decoder", "ImageFiles", "SampleStream", "Source", "TarShards", "loader_batches", "loader_workers", "sample_rng",
    "stream_loader",
]  # fmt: skip
