"""Latent/code cache, dataset reports, pose detection over folders, and the `posedraw data` commands."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.images import to_tensor
from posedraw.data.latents import cache_dataset, cache_source, cache_stream, collate_cached
from posedraw.data.shards import decode_sample, read_raw_samples, shard_urls
from posedraw.data.toy import ToyMaker
from posedraw.errors import DataError
from posedraw.models.vq import VQConfig, build_vq, encode, quantize, save_vq
from posedraw.pose import dump_pose, flip_horizontal

from .cli_helpers import run_cli

TINY_VQ = VQConfig(
    resolution=32, ch=16, ch_mult=(1, 2), num_res_blocks=1, z_channels=3, embed_dim=3, n_embed=32, norm_num_groups=8
)


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    build_dataset(out, ShardPlan(list(range(10)), 4), ToyMaker(32), 32, progress=False)
    return out


@pytest.fixture(scope="module")
def vq():
    torch.manual_seed(0)
    return build_vq(TINY_VQ).eval()


def test_cache_holds_both_orientations_of_latents_codes_and_poses(toy_dataset, vq, tmp_path):
    index = cache_dataset(toy_dataset, vq, tmp_path / "cache", batch_size=3, progress=False)
    assert index["latent_shape"] == [3, 16, 16] and len(index["shards"]) == 3
    source = {s.key: s for url in shard_urls(toy_dataset) for s in map(decode_sample, read_raw_samples(url))}
    cached = [raw for name in index["shards"] for raw in read_raw_samples(str(tmp_path / "cache" / name))]
    assert sorted(r["__key__"] for r in cached) == sorted(source)
    raw = cached[0]
    sample = source[raw["__key__"]]
    latents = np.load(io.BytesIO(raw["latent.npy"]))
    codes = np.load(io.BytesIO(raw["codes.npy"]))
    image = to_tensor(sample.image)[None]
    with torch.no_grad():
        as_is, flipped = encode(vq, image), encode(vq, image.flip(-1))
    assert np.allclose(latents[0], as_is[0].numpy(), atol=2e-3)  # float16 storage
    assert np.allclose(latents[1], flipped[0].numpy(), atol=2e-3)
    assert not np.allclose(latents[1], latents[0][..., ::-1], atol=1e-2)  # a flipped latent is not the flip's latent
    assert np.array_equal(codes[0], quantize(vq, as_is)[1][0].numpy())
    flip_pose = json.loads(raw["pose_flip.json"])
    assert flip_pose == dump_pose(flip_horizontal(sample.pose))


def test_cache_resumes_per_shard_and_training_reads_matching_orientation(toy_dataset, vq, tmp_path):
    cache = tmp_path / "cache"
    cache_dataset(toy_dataset, vq, cache, codes=False, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (cache / "shards").glob("*.tar")}
    cache_dataset(toy_dataset, vq, cache, codes=False, progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    items = list(cache_stream(cache, seed=1, flip=0.5, epochs=1))
    assert len(items) == 10 and {i["flipped"] for i in items} == {True, False}
    batch = collate_cached(items[:4])
    assert batch["latent"].shape == (4, 3, 16, 16) and batch["latent"].dtype == torch.float32
    with pytest.raises(DataError, match="no codes"):
        cache_source(cache, kind="codes")


def test_stats_report(toy_dataset, tmp_path, capsys):
    code, _, err = run_cli(capsys, "data", "stats", toy_dataset / "manifest.jsonl", "--out", tmp_path / "report")
    assert code == 0, err
    for name in ("joint_heatmaps.png", "visible_joints.png", "skip_reasons.png", "tags.png"):
        image = np.asarray(Image.open(tmp_path / "report" / name).convert("L"))
        assert image.shape[0] > 100 and image.std() > 5, name  # a plot, not a blank page
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["inputs"] == 10 and summary["kept"] == 10 and sum(summary["visible_joints"].values()) == 10


def test_detect_poses_over_a_folder_is_resumable(tmp_path, capsys):
    skimage_data = pytest.importorskip("skimage.data")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(photos / "astronaut.png")
    Image.new("RGB", (96, 96), (200, 200, 200)).save(photos / "empty.png")
    code, out, err = run_cli(capsys, "data", "detect-poses", photos, "--out", tmp_path / "kp")
    assert code == 0, err
    assert "2 images: 1 detected, 0 already done, 1 without a person" in out
    assert (tmp_path / "kp" / "astronaut.json").is_file() and not (tmp_path / "kp" / "empty.json").exists()
    code, out, _ = run_cli(capsys, "data", "detect-poses", photos, "--out", tmp_path / "kp")
    assert "0 detected, 2 already done" in out


def test_data_commands_end_to_end(tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "data",
        "toy",
        "--num",
        "12",
        "--size",
        "32",
        "--per-shard",
        "5",
        "--workers",
        "1",
        "--out",
        tmp_path / "toy",
    )
    assert code == 0, err
    assert "inputs 12: kept 12, skipped 0" in out
    torch.manual_seed(0)
    save_vq(build_vq(TINY_VQ), tmp_path / "vq")
    code, out, err = run_cli(
        capsys,
        "data",
        "cache-latents",
        tmp_path / "toy",
        "--model",
        tmp_path / "vq",
        "--out",
        tmp_path / "cache",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "3 shards, latent (3, 16, 16)" in out
    code, _, err = run_cli(
        capsys, "data", "build", "--images", tmp_path / "none", "--keypoints", tmp_path, "--out", tmp_path / "x"
    )
    assert code == 2 and "no such image folder" in err
    code, _, err = run_cli(
        capsys, "data", "cache-latents", tmp_path / "nothing", "--model", tmp_path / "vq", "--out", tmp_path / "c2"
    )
    assert code == 2 and "no dataset.json" in err
