"""The device-resident cache yields the DataLoader's batches, gathered on the device without a host read.

A device cache replaces the DataLoader only if nothing a run learns from changes: the same samples in the
same order and orientation for every seed, epoch, rank, worker count and resume point, the same prepared
poses, and so the same loss and weights. The CPU runs the device path as it runs on a GPU (`on`).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from posedraw.config import load_config
from posedraw.data.device_cache import DeviceBatches, DeviceCache, check_cache_mode, device_cache_choice
from posedraw.data.latents import cache_stream, collate_cached
from posedraw.data.stream import stream_loader
from posedraw.errors import ConfigError
from posedraw.models.code_conditioning import CodePoseEncoder
from posedraw.models.conditioning import PlacedPoseEncoder
from posedraw.train.driver import RunOptions, run_stage, weights_digest
from posedraw.train.ldm.config import LDMRunConfig
from posedraw.train.ldm.networks import make_pose_encoder
from posedraw.train.ldm.stage import ldm_stage
from posedraw.train.transformer.stage import transformer_stage

from .cli_helpers import run_cli
from .test_host_sync import HOST_READS, _quiet_steps, _reads
from .tiny_world import TINY_LDM, TINY_TRANSFORMER, write_config

BATCH = 4
EPOCH_SAMPLES = 24  # the tiny world's samples


def _prepare(kind: str, tmp_path: Path):
    """The host part of the stage's pose encoder: the LDM's tokens+maps encoder, the transformer's with maps."""
    if kind == "latent":
        return make_pose_encoder(load_config(LDMRunConfig, write_config(tmp_path, "ldm", TINY_LDM))).prepare
    if kind == "latent-people":  # with each person's prompt (host lists beside the tensors)
        return PlacedPoseEncoder(dim=16, latent_size=8, person_prompts=True).prepare
    return CodePoseEncoder(num_codes=32, grid=8, pose_grid=8, width=16).prepare


def _stream(world: Path, kind: str, rank: int, ranks: int, resume: int):
    stream = cache_stream(world / "cache", kind, seed=3)
    stream.rank, stream.ranks = rank, ranks
    stream.resume_at(resume, BATCH)
    return stream


def _loader_batches(world: Path, kind: str, workers: int, rank: int, ranks: int, resume: int, count: int):
    loader = stream_loader(_stream(world, kind, rank, ranks, resume), BATCH, collate_cached, workers)
    return list(itertools.islice(loader, count))


def _device_batches(world, kind, prepare, workers, rank, ranks, resume, count):
    stream = _stream(world, kind, rank, ranks, resume)
    batches = DeviceBatches(DeviceCache.read(stream, prepare), stream, BATCH, workers)
    return list(itertools.islice(batches, count))


CASES = [  # (kind, loader workers, rank, ranks, resume at batch)
    ("latent", 0, 0, 1, 0), ("latent", 2, 0, 1, 0), ("latent", 0, 1, 2, 0), ("latent", 2, 1, 2, 0),
    ("latent", 2, 0, 1, 5), ("latent", 0, 0, 2, 4), ("codes", 0, 0, 1, 0), ("codes", 2, 1, 2, 3),
    ("latent-people", 2, 1, 2, 3),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "workers", "rank", "ranks", "resume"), CASES)
def test_device_batches_are_the_loaders_batches_over_two_epochs(world, tmp_path, kind, workers, rank, ranks, resume):
    count = 2 * EPOCH_SAMPLES // ranks // BATCH  # two epochs of this rank's batches
    prepare = _prepare(kind, tmp_path)
    kind = kind.removesuffix("-people")
    expected = _loader_batches(world, kind, workers, rank, ranks, resume, count)
    got = _device_batches(world, kind, prepare, workers, rank, ranks, resume, count)
    assert len(got) == len(expected) == count
    for mine, theirs in zip(got, expected):
        assert mine["key"] == theirs["key"] and mine["tags"] == theirs["tags"]
        assert mine[kind].dtype == theirs[kind].dtype and torch.equal(mine[kind], theirs[kind])
        wanted = prepare(theirs["pose"])
        assert mine["pose"].keys() == wanted.keys()
        assert all(_same(mine["pose"][name], wanted[name]) for name in wanted)


def _same(mine: torch.Tensor | list, wanted: torch.Tensor | list) -> bool:
    return torch.equal(mine, wanted) if isinstance(wanted, torch.Tensor) else mine == wanted and any(map(any, wanted))


def test_device_batches_take_the_samples_flips(world, tmp_path):
    """The orientation is CachedSample's draw: both occur, and each batch row is the drawn one."""
    stream = _stream(world, "latent", 0, 1, 0)
    cache = DeviceCache.read(stream, _prepare("latent", tmp_path))
    decoded = list(itertools.islice(iter(stream), EPOCH_SAMPLES))  # the stream's own decoding, in order
    rows = [row for batch in itertools.islice(DeviceBatches(cache, stream, BATCH, 0), 6) for row in batch["latent"]]
    flips = [sample["flipped"] for sample in decoded]
    assert any(flips) and not all(flips)
    for sample, row in zip(decoded, rows):
        index = cache.keys.index(sample["key"])
        assert torch.equal(row, cache.values[2 * index + int(sample["flipped"])].float())
        assert not torch.equal(row, cache.values[2 * index + 1 - int(sample["flipped"])].float())


def test_a_resumed_device_stream_continues_where_the_whole_run_was(world, tmp_path):
    prepare = _prepare("codes", tmp_path)
    whole = _device_batches(world, "codes", prepare, 2, 0, 1, 0, 9)
    resumed = _device_batches(world, "codes", prepare, 2, 0, 1, 5, 4)
    assert [b["key"] for b in resumed] == [b["key"] for b in whole[5:]]
    assert all(torch.equal(a["codes"], b["codes"]) for a, b in zip(resumed, whole[5:]))


def test_gathering_a_batch_reads_nothing_back_from_the_device(world, tmp_path, monkeypatch):
    stream = _stream(world, "latent", 0, 1, 0)
    batches = iter(DeviceBatches(DeviceCache.read(stream, _prepare("latent", tmp_path)), stream, BATCH, 0))
    next(batches)  # the first batch plans the epoch
    reads = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, *a, _o=original, **k: reads.append(1) or _o(t, *a, **k))
    for _ in range(8):  # across the epoch's end
        next(batches)
    assert reads == []


def test_the_cache_holds_both_orientations_at_their_stored_precision(world, tmp_path):
    stream = _stream(world, "latent", 0, 1, 0)
    cache = DeviceCache.read(stream, _prepare("latent", tmp_path))
    assert cache.values.dtype == torch.float16 and cache.values.shape[0] == 2 * EPOCH_SAMPLES
    assert len(set(cache.keys)) == EPOCH_SAMPLES
    assert cache.nbytes == sum(t.numel() * t.element_size() for t in (cache.values, *cache.poses.values()))


def test_auto_holds_the_cache_on_cuda_only_when_it_takes_under_half_the_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1000, 4000))
    cuda = torch.device("cuda", 0)
    assert device_cache_choice("auto", cuda, lambda: 499)[0]
    on, why = device_cache_choice("auto", cuda, lambda: 500)
    assert not on and "over half" in why
    assert not device_cache_choice("auto", torch.device("cpu"), lambda: 1)[0]
    assert device_cache_choice("on", torch.device("cpu"), lambda: 10**15)[0]
    assert not device_cache_choice("off", cuda, lambda: 1)[0]


def test_an_unknown_cache_mode_is_refused_naming_the_option(world, tmp_path, capsys):
    with pytest.raises(ConfigError, match="--cache-on-device: expected one of auto, on, off, got 'yes'"):
        check_cache_mode("yes")
    config = write_config(tmp_path, "ldm", TINY_LDM)
    code, _, err = run_cli(capsys, "train", "ldm", "--config", config, "--latents", world / "cache", "--vq",
                           world / "vq", "--out", tmp_path / "run", "--cache-on-device", "yes")  # fmt: skip
    assert code == 2 and "--cache-on-device" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def _train(stage, out: Path, steps: int = 4) -> str:
    run_stage(stage, RunOptions(out=out, device="cpu", max_steps=steps, progress=False))
    return weights_digest(stage.module)


@pytest.mark.slow
@pytest.mark.parametrize("stage_name", ["ldm", "transformer"])
def test_training_on_the_device_cache_reaches_the_loaders_weights(world, tmp_path, capsys, stage_name):
    config = write_config(tmp_path, stage_name, TINY_LDM if stage_name == "ldm" else TINY_TRANSFORMER)
    build = ldm_stage if stage_name == "ldm" else transformer_stage

    def stage(mode: str, out: Path):
        return build(config, world / "cache", world / "vq", out, cache_on_device=mode)

    off = _train(stage("off", tmp_path / "off"), tmp_path / "off")
    assert "training data: DataLoader" in capsys.readouterr().err
    on = _train(stage("on", tmp_path / "on"), tmp_path / "on")
    assert "training data: device cache: 24 samples" in capsys.readouterr().err
    assert on == off
    # resumed on the device path from the loader path's checkpoint at step 2: the same weights again
    _train(stage("off", tmp_path / "resumed"), tmp_path / "resumed", steps=2)
    assert _train(stage("on", tmp_path / "resumed"), tmp_path / "resumed") == off


@pytest.mark.slow
def test_training_steps_on_the_device_cache_read_the_device_only_when_logging(world, tmp_path, monkeypatch):
    config = write_config(tmp_path, "ldm", TINY_LDM)
    stage = ldm_stage(config, world / "cache", world / "vq", tmp_path / "run", cache_on_device="on")
    counts = _reads(stage, tmp_path / "run", monkeypatch)
    assert _quiet_steps(counts) == [0] * len(_quiet_steps(counts)), counts
