"""Which samples each reader takes, epoch by epoch: one plan for every rank, computed without reading data.

An epoch's order is the shards in a seeded random order, each shard's samples in a seeded random order.
That stream is cut into `ranks` equal contiguous parts (the `N mod ranks` samples left over wait for another
epoch), so every rank gets the same number of samples whatever the shard count, and the parts are disjoint.
A rank's part is cut into `workers` contiguous parts (sizes differ by at most one), and each worker's part
passes through a seeded shuffle buffer that mixes neighbouring shards.

Everything is a pure function of (counts, seed, epoch, rank, worker), so every rank computes the same plan
and a resumed run can skip to any sample of any epoch without reading the samples before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: one sample: (shard index, position inside the shard)
SampleRef = tuple[int, int]


def epoch_order(counts: Sequence[int], seed: int, epoch: int) -> list[SampleRef]:
    """Every sample once: shards shuffled, samples within each shard shuffled (seeded by seed and epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order: list[SampleRef] = []
    for shard in rng.permutation(len(counts)).tolist():
        positions = np.random.default_rng([seed, epoch, shard]).permutation(counts[shard]).tolist()
        order.extend((shard, p) for p in positions)
    return order


def rank_part(order: Sequence[SampleRef], rank: int, ranks: int) -> Sequence[SampleRef]:
    """Rank `rank`'s contiguous share: len(order) // ranks samples, the same count on every rank."""
    size = len(order) // ranks
    return order[rank * size : (rank + 1) * size]


def worker_part(items: Sequence[SampleRef], worker: int, workers: int) -> Sequence[SampleRef]:
    """Loader worker `worker`'s contiguous share of a rank's part (sizes differ by at most one)."""
    start, end = (len(items) * worker) // workers, (len(items) * (worker + 1)) // workers
    return items[start:end]


def buffer_shuffle(items: Sequence[SampleRef], size: int, rng: np.random.Generator) -> list[SampleRef]:
    """The order a shuffle buffer of `size` gives: fill it, emit a random entry per new item, drain shuffled.

    Done on sample references instead of samples, so it costs nothing to compute for skipped samples.
    """
    if size <= 1:
        return list(items)
    draws = rng.random(len(items))
    buffer: list[SampleRef] = []
    out: list[SampleRef] = []
    for item, draw in zip(items, draws):
        buffer.append(item)
        if len(buffer) >= size:
            j = int(draw * len(buffer))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            out.append(buffer.pop())
    rng.shuffle(buffer)  # type: ignore[arg-type]
    return out + buffer


def reader_plan(
    counts: Sequence[int],
    seed: int,
    epoch: int,
    rank: int = 0,
    ranks: int = 1,
    worker: int = 0,
    workers: int = 1,
    buffer: int = 256,
) -> list[SampleRef]:
    """The samples one loader worker of one rank reads in `epoch`, in the order it yields them."""
    part = worker_part(rank_part(epoch_order(counts, seed, epoch), rank, ranks), worker, workers)
    return buffer_shuffle(part, buffer, np.random.default_rng([seed, epoch, rank, worker, 1]))


def batches_of_worker(batches: int, worker: int, workers: int) -> int:
    """How many of a rank's first `batches` batches loader worker `worker` made: a DataLoader takes batches
    from its workers in turn (worker 0, 1, ..., 0, 1, ...)."""
    return max(0, (batches - worker + workers - 1) // workers)


__all__ = ["SampleRef", "batches_of_worker", "buffer_shuffle", "epoch_order", "rank_part", "reader_plan", "worker_part"]
