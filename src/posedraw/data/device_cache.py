"""A latent or code cache held in device memory, so the data path never starves the chip.

The cache's samples are read once, both orientations of each (fp16 latents or int codes), with both poses
already prepared by the stage's pose encoder (`prepare`: the host's numpy part of the conditioning), and
moved to the training device in one copy. Every batch is then the rows the DataLoader over the same
stream would yield (same seed, epoch, rank, loader workers, shuffle buffer and resume point: the plan is
`SampleStream.planned`, the batching `loader_batches`), flipped by the same draw as `CachedSample`, and
gathered on the device with `index_select`: per step only a small index tensor crosses to the device and
nothing is read back, so a step never waits for the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from posedraw.data.latents import CachedSample
from posedraw.data.order import SampleRef
from posedraw.data.stream import SampleStream, loader_batches, sample_rng
from posedraw.errors import ConfigError, DataError
from posedraw.pose import Pose

#: a pose encoder's host part: poses -> tensors with the batch first, and lists that stay on the host (the
#: slots' per-person prompts, for the text encoder) (PoseEncoder.prepare, CodePoseEncoder.prepare)
PreparePoses = Callable[[Sequence[Pose]], dict[str, torch.Tensor | list]]
#: a batch's poses: Pose objects (the DataLoader's batches) or already prepared tensors (the device cache's)
BatchPoses = Sequence[Pose] | dict[str, torch.Tensor | list]
#: `--cache-on-device` values
CACHE_MODES = ("auto", "on", "off")
#: poses prepared at a time while the cache is read
PREPARE_CHUNK = 256


def prepared_poses(prepare: PreparePoses, poses: BatchPoses, device: torch.device) -> dict[str, torch.Tensor | list]:
    """The prepared pose tensors of a batch on `device` (host lists as they are), whichever form the batch
    brings: the one entry of the modules' pose conditioning for both data paths."""
    prepared = poses if isinstance(poses, dict) else prepare(poses)
    return {name: _on(value, device) for name, value in prepared.items()}


def _on(value: torch.Tensor | list, device: torch.device) -> torch.Tensor | list:
    return value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value


@dataclass
class DeviceCache:
    """Every sample of a stream's source in both orientations: row 2 i is sample i as stored, row 2 i + 1
    its flipped twin (samples in stored order, shard by shard)."""

    kind: str  # "latent" (held as fp16) or "codes" (held as int16, or int32 for a codebook over 32768)
    values: torch.Tensor  # (2 N, ...) latents or codes
    poses: dict[str, torch.Tensor | list]  # (2 N, ...) each of the pose encoder's prepared tensors (or host lists)
    keys: list[str]
    tags: list[list[str]]
    first_rows: list[int]  # the row of each shard's first sample / 2

    @classmethod
    def read(cls, stream: SampleStream, prepare: PreparePoses, limit: int | None = None) -> DeviceCache:
        """Read the samples of `stream`'s source (the first `limit` only: to measure one)."""
        decode = _cached_decoder(stream)
        values, poses, keys, tags, first_rows = [], [], [], [], []
        for shard, count in enumerate(stream.source.counts):
            first_rows.append(len(keys))
            if limit is not None and len(keys) >= limit:
                break
            for raw in stream.source.read(shard)[: count if limit is None else limit - len(keys)]:
                twins = [decode.orientation(raw, flipped) for flipped in (False, True)]
                values += [t[decode.kind] for t in twins]
                poses += [t["pose"] for t in twins]
                keys.append(twins[0]["key"])
                tags.append(twins[0]["tags"])
        if not keys:
            raise DataError(f"{stream.source.name(0)}: the cache holds no samples")
        chunks = [prepare(poses[i : i + PREPARE_CHUNK]) for i in range(0, len(poses), PREPARE_CHUNK)]
        prepared = {name: _joined([c[name] for c in chunks]) for name in chunks[0]}
        return cls(decode.kind, _stored(torch.stack(values)), prepared, keys, tags, first_rows)

    @property
    def nbytes(self) -> int:
        """Device memory the cache takes."""
        tensors = [t for t in (self.values, *self.poses.values()) if isinstance(t, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def to(self, device: torch.device) -> DeviceCache:
        poses = {name: _on(value, device) for name, value in self.poses.items()}
        return DeviceCache(self.kind, self.values.to(device), poses, self.keys, self.tags, self.first_rows)

    def gather(self, samples: Sequence[SampleRef], flips: Sequence[bool]) -> dict[str, Any]:
        """The batch of `samples` (each flipped or not) in `collate_cached`'s form, poses prepared: the
        index goes to the device without a wait (pinned, non-blocking on CUDA), nothing comes back."""
        rows = [self.first_rows[shard] + position for shard, position in samples]
        picked = [2 * row + int(flip) for row, flip in zip(rows, flips)]
        index = torch.tensor(picked, dtype=torch.long)
        if self.values.is_cuda:
            index = index.pin_memory()
        index = index.to(self.values.device, non_blocking=True)
        values = self.values.index_select(0, index)
        return {
            self.kind: values.float() if self.kind == "latent" else values.long(),
            "pose": {name: _rows(value, index, picked) for name, value in self.poses.items()},
            "key": [self.keys[row] for row in rows],
            "tags": [self.tags[row] for row in rows],
        }


def _joined(chunks: list[torch.Tensor | list]) -> torch.Tensor | list:
    return torch.cat(chunks) if isinstance(chunks[0], torch.Tensor) else [item for chunk in chunks for item in chunk]


def _rows(value: torch.Tensor | list, index: torch.Tensor, picked: list[int]) -> torch.Tensor | list:
    """The batch's rows of one prepared entry: gathered on the device, or (a host list) on the host."""
    return value.index_select(0, index) if isinstance(value, torch.Tensor) else [value[i] for i in picked]


class DeviceBatches:
    """The batches `stream_loader(stream, batch_size, collate_cached, num_workers)` would yield, gathered
    from a device cache: an iterable Lightning takes in place of the DataLoader."""

    def __init__(self, cache: DeviceCache, stream: SampleStream, batch_size: int, num_workers: int) -> None:
        self.cache, self.stream, self.batch_size, self.num_workers = cache, stream, batch_size, num_workers
        self.decode = _cached_decoder(stream)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        seed = self.stream.seed
        for batch in loader_batches(self.stream, self.batch_size, self.num_workers):
            flips = [self.decode.flipped(sample_rng(seed, epoch, ref)) for ref, epoch in batch]
            yield self.cache.gather([ref for ref, _ in batch], flips)


def estimated_bytes(stream: SampleStream, prepare: PreparePoses) -> int:
    """Device memory the whole cache would take, from one sample read (to decide before reading them all)."""
    return DeviceCache.read(stream, prepare, limit=1).nbytes * sum(stream.source.counts)


def check_cache_mode(mode: str) -> None:
    """Refuse an unknown `--cache-on-device` value before any data is read."""
    if mode not in CACHE_MODES:
        raise ConfigError(f"--cache-on-device: expected one of {', '.join(CACHE_MODES)}, got {mode!r}")


def device_cache_choice(mode: str, device: torch.device, needed: Callable[[], int]) -> tuple[bool, str]:
    """Whether to hold the cache on `device`, and why (for the run's log line). `auto`: on a CUDA device
    when the cache takes under half of its free memory; `on`: always (on the CPU too, as the tests run it)."""
    check_cache_mode(mode)
    if mode != "auto":
        return mode == "on", f"--cache-on-device {mode}"
    if device.type != "cuda":
        return False, f"auto: {device.type} is not a CUDA device"
    size, free = needed(), torch.cuda.mem_get_info(device)[0]
    fits = size < free / 2
    return fits, f"auto: {_gb(size)} is {'under' if fits else 'over'} half of {_gb(free)} free on {device}"


def _stored(values: torch.Tensor) -> torch.Tensor:
    """Latents at the cache's fp16 (exact: they were stored so), codes in the smallest integer type that
    holds them; a batch is widened again on the device to the loader's float32 / int64."""
    if values.is_floating_point():
        return values.half()
    return values.short() if int(values.max()) < 2**15 else values.int()


def _gb(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def _cached_decoder(stream: SampleStream) -> CachedSample:
    if not isinstance(stream.decode, CachedSample):
        raise DataError("a device cache holds latent or code caches only (streams decoded by CachedSample)")
    return stream.decode


def describe(cache: DeviceCache, device: torch.device) -> str:
    """The log line of the device path."""
    return f"device cache: {len(cache.keys)} samples, both orientations, {_gb(cache.nbytes)} on {device}"


__all__ = [
    "CACHE_MODES", "BatchPoses", "DeviceBatches", "DeviceCache", "PreparePoses", "check_cache_mode", "describe",
    "device_cache_choice",
    "estimated_bytes", "prepared_poses",
]  # fmt: skip
