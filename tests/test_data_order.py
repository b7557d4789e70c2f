"""The order training reads samples in: epochs reshuffle, ranks and workers split evenly, resumes continue."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from torch.utils.data import DataLoader

from posedraw.data.order import batches_of_worker, epoch_order, rank_part, reader_plan
from posedraw.data.stream import SampleStream, stream_loader
from posedraw.errors import DataError


@dataclass
class Numbered:
    """A source of `counts[s]` samples per shard named "s:p", counting how often each shard is read."""

    counts: list[int]

    def __post_init__(self) -> None:
        self.reads: list[int] = []

    def read(self, shard: int) -> list[str]:
        self.reads.append(shard)
        return [f"{shard}:{p}" for p in range(self.counts[shard])]

    def name(self, shard: int) -> str:
        return f"shard{shard}"


def keep_name(raw: str, rng: random.Random) -> str:
    return raw


def with_coin(raw: str, rng: random.Random) -> tuple[str, bool]:
    return raw, rng.random() < 0.5


def collate_names(items: list) -> list:
    return items


def test_every_epoch_reads_every_sample_once_in_a_new_order():
    counts = [5, 7, 4, 9]
    orders = [epoch_order(counts, seed=3, epoch=e) for e in range(3)]
    everything = sorted((s, p) for s, n in enumerate(counts) for p in range(n))
    assert all(sorted(order) == everything for order in orders)
    assert orders[0] != orders[1] != orders[2]
    shard_runs = [[s for i, (s, _) in enumerate(o) if i == 0 or o[i - 1][0] != s] for o in orders]
    assert len({tuple(r) for r in shard_runs}) > 1  # the shard order changes too
    within = [[p for s, p in o if s == 3] for o in orders]
    assert within[0] != within[1]  # and the order inside a shard
    assert epoch_order(counts, seed=3, epoch=1) == orders[1]  # the same plan on every call (every rank)


@pytest.mark.parametrize("counts", [[64], [10, 10, 11], [3, 1, 8, 2, 6]])
def test_ranks_and_workers_get_disjoint_equal_shares(counts):
    ranks, workers, epoch = 2, 3, 4
    parts = {
        (r, w): reader_plan(counts, 0, epoch, r, ranks, w, workers, buffer=4)
        for r in range(ranks)
        for w in range(workers)
    }
    flat = [ref for part in parts.values() for ref in part]
    assert len(flat) == len(set(flat))  # disjoint
    assert len(flat) == sum(counts) - sum(counts) % ranks  # complete but for N mod ranks samples
    per_rank = [sum(len(parts[r, w]) for w in range(workers)) for r in range(ranks)]
    assert per_rank[0] == per_rank[1] == sum(counts) // ranks


def test_one_shard_feeds_both_ranks():
    halves = [rank_part(epoch_order([7], 0, 0), r, 2) for r in range(2)]
    assert len(halves[0]) == len(halves[1]) == 3 and not set(halves[0]) & set(halves[1])


def test_loader_takes_batches_from_its_workers_in_turn():
    source = Numbered([6, 6, 6, 6])
    stream = SampleStream(source, keep_name, seed=1, epochs=1)
    batches = list(DataLoader(stream, batch_size=2, num_workers=2, collate_fn=collate_names))
    for k, batch in enumerate(batches):
        worker, nth = k % 2, batches_of_worker(k, k % 2, 2)
        plan = stream.plan(0, worker, 2)
        assert batch == [f"{s}:{p}" for s, p in plan[2 * nth : 2 * nth + 2]]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_continues_with_the_next_unread_batch(workers):
    source = Numbered([5, 9, 4])
    whole = SampleStream(source, with_coin, seed=2, epochs=None)
    straight = [b for _, b in zip(range(20), stream_loader(whole, 3, collate_names, workers))]
    resumed_stream = SampleStream(source, with_coin, seed=2, epochs=None)
    resumed_stream.resume_at(7, 3)
    resumed = [b for _, b in zip(range(13), stream_loader(resumed_stream, 3, collate_names, workers))]
    assert resumed == straight[7:]  # the same samples and the same coin flips


def test_flips_and_augmentation_change_between_epochs_but_not_between_runs():
    source = Numbered([50])
    two_epochs = list(SampleStream(source, with_coin, seed=0, epochs=2))
    first = dict(two_epochs[:50])
    second = dict(two_epochs[50:])
    assert set(first) == set(second) and first != second
    assert list(SampleStream(source, with_coin, seed=0, epochs=2)) == two_epochs


def test_a_resumed_stream_skips_whole_epochs_without_reading_them():
    source = Numbered([4, 4])
    stream = SampleStream(source, keep_name, epochs=None)
    stream.resume_at(batches=5, batch_size=4)  # 20 samples = 2.5 epochs of 8
    first = next(iter(stream))
    assert source.reads == [stream.plan(2)[4][0]]  # only the shard of the first sample to come
    assert first == "{}:{}".format(*stream.plan(2)[4])


def test_more_ranks_than_samples_is_a_clear_error():
    with pytest.raises(DataError, match="2 samples cannot feed 3 ranks"):
        SampleStream(Numbered([2]), keep_name, ranks=3)
