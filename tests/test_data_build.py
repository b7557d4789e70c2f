"""Dataset shards, builds (resume, split, counts, filters), Danbooru-style ingestion and streaming reads."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.filters import FilterConfig, LimbStatistics, skeleton_problem, uniform_border_fraction
from posedraw.data.ingest import Item, RealMaker, find_inputs, learn_statistics
from posedraw.data.loader import collate, dataset_stream
from posedraw.data.shards import decode_sample, read_manifest, read_raw_samples, shard_urls
from posedraw.data.toy import ToyMaker, make_toy_sample
from posedraw.errors import DataError
from posedraw.pose import JOINTS, Pose, read_pose, resize


def _toy(out: Path, num: int = 24, per_shard: int = 6, **kwargs):
    return build_dataset(out, ShardPlan(list(range(num)), per_shard), ToyMaker(32), 32, progress=False, **kwargs)


def test_samples_round_trip_through_shards(tmp_path):
    _toy(tmp_path / "ds", num=6)
    samples = [decode_sample(raw) for url in shard_urls(tmp_path / "ds") for raw in read_raw_samples(url)]
    assert [s.key for s in samples] == [f"toy{i:08d}" for i in range(6)]
    for i, sample in enumerate(samples):
        toy = make_toy_sample(i, 32)
        assert np.array_equal(np.asarray(sample.image), np.asarray(toy.image))
        assert sample.pose.allclose(toy.prompted_pose, atol=0)  # each figure's tags as its prompt
        assert sample.meta["caption"] == toy.caption


@pytest.mark.slow
def test_a_rebuild_of_the_same_inputs_gives_identical_shards(tmp_path):
    _toy(tmp_path / "a")
    _toy(tmp_path / "b", workers=2)
    for shard in sorted((tmp_path / "a" / "shards").glob("*.tar")):
        assert shard.read_bytes() == (tmp_path / "b" / "shards" / shard.name).read_bytes()
    assert (tmp_path / "a" / "manifest.jsonl").read_bytes() == (tmp_path / "b" / "manifest.jsonl").read_bytes()


CRASH_AT: dict[str, int | None] = {"seed": None}


@dataclass(frozen=True)
class Crashing:
    """The toy maker, dying at CRASH_AT's seed like a killed build; the crash is no setting of the maker,
    so the resumed build (CRASH_AT cleared) has the same fingerprint and reuses the finished shards."""

    size: int = 32

    def __call__(self, seed: int):
        if seed == CRASH_AT["seed"]:
            raise KeyboardInterrupt
        return ToyMaker(self.size)(seed)


def test_an_interrupted_build_resumes_without_redoing_finished_shards(tmp_path):
    out = tmp_path / "ds"
    plan = ShardPlan(list(range(24)), 6)
    CRASH_AT["seed"] = 14
    try:
        with pytest.raises(KeyboardInterrupt):
            build_dataset(out, plan, Crashing(), 32, progress=False)
    finally:
        CRASH_AT["seed"] = None
    finished = sorted(p.name for p in (out / "shards").glob("*.tar"))
    assert finished == ["000000.tar", "000001.tar"]  # shard 2 (seeds 12..17) died: nothing of it is left
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.tar")}
    report = build_dataset(out, plan, Crashing(), 32, progress=False)
    assert (report.shards_built, report.shards_reused, report.kept, report.complete) == (2, 2, 24, True)
    assert all((out / "shards" / name).stat().st_mtime_ns == t for name, t in stamps.items())
    _toy(tmp_path / "clean")
    assert (out / "manifest.jsonl").read_bytes() == (tmp_path / "clean" / "manifest.jsonl").read_bytes()


def test_two_machines_split_the_build_and_the_last_one_merges(tmp_path):
    out = tmp_path / "ds"
    first = _toy(out, shard_index=0, num_shards=2)
    assert not first.complete and first.inputs == 12 and not (out / "manifest.jsonl").exists()
    second = _toy(out, shard_index=1, num_shards=2)
    assert second.complete and second.inputs == 24 and second.kept == 24
    _toy(tmp_path / "single")
    assert (out / "manifest.jsonl").read_bytes() == (tmp_path / "single" / "manifest.jsonl").read_bytes()
    with pytest.raises(DataError, match="--shard-index"):
        _toy(out, shard_index=2, num_shards=2)


def killed_while_writing(*paths: Path) -> None:
    """What atomic writes of `paths` leave when their process is killed half-way (SIGKILL, power loss)."""
    code = ("import contextlib, os, sys; from posedraw.io import atomic_path\n"
            "with contextlib.ExitStack() as stack:\n"
            "    for path in sys.argv[1:]: stack.enter_context(atomic_path(path)).write_bytes(b'half')\n"
            "    os._exit(9)")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code, *map(str, paths)], check=False).returncode == 9


def _hidden_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def test_a_killed_build_s_temporary_files_are_removed_when_it_resumes(tmp_path):
    out = tmp_path / "ds"
    _toy(out, shard_index=0, num_shards=2)  # this machine's shards: 0 and 2
    mine = [out / "shards" / "000002.tar", out / "parts" / "000000.jsonl", out / "parts" / "000002.fingerprint"]
    theirs = [out / "shards" / "000001.tar", out / "manifest.jsonl"]  # the other machine may be writing these
    killed_while_writing(*mine, *theirs)
    foreign = [out / "shards" / ".000002.tar.notmine", out / "shards" / "000002.tar.bak"]
    for path in foreign:
        path.write_text("a user's file")
    before = _hidden_files(out)
    assert len(before) == len(mine) + len(theirs) + 1
    report = _toy(out, shard_index=0, num_shards=2)
    assert report.shards_reused == 2  # the leftovers are temporary files, not shards
    kept = (".manifest.jsonl.", "shards/.000001.tar.", "shards/.000002.tar.notmine")
    assert _hidden_files(out) == [name for name in before if name.startswith(kept)]
    assert all(path.read_text() == "a user's file" for path in foreign)


# --- real data: a folder laid out like Danbooru2021 with the original keypoint files -------------------
def _danbooru_pose(pose: Pose) -> dict:
    """The original release's format: {joint_with_side_last: [row, col]} in a 512 canvas."""
    scaled = resize(pose, 512, 512)
    names = {j: (j.split("_", 1)[1] + "_" + j.split("_", 1)[0]) if "_" in j else j for j in JOINTS}
    return {names[j]: [float(scaled.xy[0, i, 1]), float(scaled.xy[0, i, 0])] for i, j in enumerate(JOINTS)
            if scaled.present[0, i]}  # fmt: skip


@pytest.fixture(scope="module")
def danbooru(tmp_path_factory) -> Path:
    """512px/0xxx/ID.jpg images (toy figures), keypoints/ID.json, metadata.jsonl, plus crafted bad inputs."""
    root = tmp_path_factory.mktemp("danbooru")
    images, keypoints = root / "512px", root / "keypoints"
    keypoints.mkdir()
    meta = []
    seeds = [s for s in range(400) if make_toy_sample(s, 160).pose.visible.sum() >= 12][:30]
    for n, seed in enumerate(seeds):
        toy = make_toy_sample(seed, 160)
        image_id = 1000000 + n
        folder = images / f"0{image_id % 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        toy.image.save(folder / f"{image_id}.jpg", quality=95)
        (keypoints / f"{image_id}.json").write_text(json.dumps(_danbooru_pose(toy.pose)))
        rating = "e" if n == 3 else "s"
        tags = " ".join(toy.tags + (["comic"] if n == 4 else []))
        meta.append({"id": image_id, "tag_string": tags, "rating": rating})
    bad = images / "0999"
    bad.mkdir()
    (bad / "2000001.jpg").write_bytes(b"not a jpeg")  # unreadable
    (keypoints / "2000001.json").write_text(json.dumps(_danbooru_pose(make_toy_sample(seeds[0], 160).pose)))
    Image.new("RGB", (64, 64), (9, 9, 9)).save(bad / "2000002.png")  # too small
    (keypoints / "2000002.json").write_text(json.dumps(_danbooru_pose(make_toy_sample(seeds[0], 160).pose)))
    make_toy_sample(seeds[1], 160).image.save(bad / "2000003.png")  # no keypoints file
    few = make_toy_sample(seeds[2], 160)
    make_toy_sample(seeds[2], 160).image.save(bad / "2000004.png")  # only 3 joints
    (keypoints / "2000004.json").write_text(json.dumps(dict(list(_danbooru_pose(few.pose).items())[:3])))
    upside = _danbooru_pose(few.pose)
    for side in ("left", "right"):  # hips swapped with shoulders
        upside[f"hip_{side}"], upside[f"shoulder_{side}"] = upside[f"shoulder_{side}"], upside[f"hip_{side}"]
    few.image.save(bad / "2000005.png")
    (keypoints / "2000005.json").write_text(json.dumps(upside))
    bordered = Image.new("RGB", (400, 400), (0, 0, 0))
    bordered.paste(few.image.resize((120, 120)), (140, 140))
    bordered.save(bad / "2000006.png")  # mostly black border
    (keypoints / "2000006.json").write_text(json.dumps(_danbooru_pose(few.pose)))
    (keypoints / "2000007.json").write_text("{broken")
    few.image.save(bad / "2000007.png")  # keypoints not JSON
    (keypoints / "3000000.json").write_text(json.dumps(_danbooru_pose(few.pose)))  # keypoints without an image
    meta += [{"id": 2000000 + n, "tag_string": "", "rating": "s"} for n in range(1, 8)]
    (root / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return root


@pytest.mark.slow
def test_building_from_a_danbooru_layout_end_to_end(danbooru, tmp_path):
    items, orphans = find_inputs(danbooru / "512px", danbooru / "keypoints", danbooru / "metadata.jsonl")
    assert orphans == 1 and len(items) == 37
    config = FilterConfig(ratings=("s",), exclude_tags=("comic",))
    maker = RealMaker(64, config, learn_statistics(items), "png")
    report = build_dataset(tmp_path / "ds", ShardPlan(items, 8), maker, 64, "png", workers=2, progress=False)
    assert report.complete and report.inputs == 37 and report.kept + sum(report.skipped.values()) == 37
    rows = {r["id"]: r for r in read_manifest(tmp_path / "ds" / "manifest.jsonl")}
    expected = {
        "2000001": "unreadable image", "2000002": "image too small", "2000003": "no keypoints",
        "2000004": "too few visible joints (3 < 10)", "2000005": "hips above shoulders",
        "2000006": "large uniform borders", "1000003": "rating e not in ['s']", "1000004": "excluded tag comic",
    }  # fmt: skip
    for key, reason in expected.items():
        assert rows[key]["status"] == "skipped" and rows[key]["reason"] == reason, (key, rows[key]["reason"])
    assert rows["2000007"]["reason"].startswith("bad keypoints")
    assert report.kept == 28 and all(rows[f"{1000000 + n}"]["status"] == "kept" for n in (0, 1, 2, 5, 29))
    # kept samples: the joints moved with the image (160 px -> 64 px, already square)
    samples = {s.key: s for url in shard_urls(tmp_path / "ds") for s in map(decode_sample, read_raw_samples(url))}
    original = read_pose(danbooru / "keypoints" / "1000000.json")
    assert samples["1000000"].pose.allclose(resize(original, 64, 64), atol=1e-6)
    assert samples["1000000"].meta["rating"] == "s" and rows["1000000"]["tags"]


def test_skeleton_filter_learns_limb_lengths_from_the_data():
    poses = [make_toy_sample(s, 64).pose for s in range(200)]
    stats = LimbStatistics.learn(poses)
    config = FilterConfig()
    typical = next(p for p in poses if p.present.all())
    assert sum(skeleton_problem(p, stats, config) is not None for p in poses) == 0  # sitting (short thighs) too
    xy = typical.xy.copy()
    xy[0, JOINTS.index("left_wrist")] = xy[0, JOINTS.index("left_elbow")] + (0, 40)  # a forearm far too long
    assert skeleton_problem(typical.replace(xy=xy), stats, config) == "implausible left forearm length"
    xy = typical.xy.copy()
    xy[0, 0] = (-40, -40)
    assert skeleton_problem(typical.replace(xy=xy), stats, config) == "joints far outside the frame"


def test_uniform_border_fraction():
    image = Image.new("RGB", (100, 100), (0, 0, 0))
    image.paste(Image.effect_noise((50, 100), 60).convert("RGB"), (25, 0))
    assert uniform_border_fraction(image) == pytest.approx(0.5, abs=0.02)


def test_duplicate_ids_are_skipped_with_a_reason(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / "img" / folder).mkdir(parents=True)
        make_toy_sample(1, 160).image.save(tmp_path / "img" / folder / "42.png")
    (tmp_path / "kp").mkdir()
    (tmp_path / "kp" / "42.json").write_text(json.dumps(_danbooru_pose(make_toy_sample(1, 160).pose)))
    items, _ = find_inputs(tmp_path / "img", tmp_path / "kp")
    assert [i.id for i in items] == ["42", "42@b/42.png"]
    sample, row = RealMaker(32, FilterConfig(), LimbStatistics())(items[1])
    assert sample is None and row["reason"] == "duplicate image id"
    assert isinstance(items[0], Item)


# --- streaming ------------------------------------------------------------------------------------------
def test_ddp_ranks_stream_disjoint_and_complete_samples(tmp_path):
    _toy(tmp_path / "ds", num=24, per_shard=3)
    keys = []
    for rank in range(2):
        dataset = dataset_stream(tmp_path / "ds", 32, rank=rank, ranks=2, shuffle_buffer=4, epochs=1)
        keys.append([s["key"] for s in dataset])
    assert not set(keys[0]) & set(keys[1])
    assert sorted(keys[0] + keys[1]) == [f"toy{i:08d}" for i in range(24)]


def test_loader_workers_and_collate(tmp_path):
    from torch.utils.data import DataLoader

    from posedraw.data.augment import Augmentation

    _toy(tmp_path / "ds", num=24, per_shard=3)
    dataset = dataset_stream(tmp_path / "ds", 24, augmentation=Augmentation(), epochs=1)
    batches = list(DataLoader(dataset, batch_size=5, num_workers=2, collate_fn=collate))
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == [f"toy{i:08d}" for i in range(24)]
    assert batches[0]["image"].shape[1:] == (3, 24, 24) and batches[0]["pose"][0].canvas == (24.0, 24.0)


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"no dataset\.json"):
        shard_urls(tmp_path)


def test_clip_filter_scores_every_image_and_skips_below_the_threshold(danbooru, tmp_path):
    """With the tiny untrained CLIP the scores mean nothing, but the mechanics are the real ones."""
    from posedraw.data.clip_filter import ClipFilter
    from posedraw.models.clip import TINY, ClipSpec

    items, _ = find_inputs(danbooru / "512px", danbooru / "keypoints", danbooru / "metadata.jsonl")
    items = [i for i in items if i.id.startswith("10000")][:6]
    spec = ClipSpec(TINY)
    probe = ClipFilter(("a girl",), ("a comic page",), -1.0, spec)
    scores = [probe.score(RealMaker(64, FilterConfig(), LimbStatistics())._make(i)[0].image) for i in items]
    cut = sorted(scores)[len(scores) // 2]
    clip_filter = ClipFilter(("a girl",), ("a comic page",), cut, spec)
    maker = RealMaker(64, FilterConfig(), learn_statistics(items), "png", clip_filter)
    report = build_dataset(tmp_path / "ds", ShardPlan(items, 3), maker, 64, "png", progress=False)
    rows = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    assert report.kept == sum(s >= cut for s in scores) and 0 < report.kept < len(items)
    assert all(r["reason"].startswith("CLIP score") for r in rows if r["status"] == "skipped")
    assert all(r["clip_score"] >= round(cut, 4) for r in rows if r["status"] == "kept")


def test_a_dataset_on_a_remote_filesystem_streams_like_a_local_one(tmp_path):
    """fsspec URLs (here its in-memory filesystem, standing in for s3://) reach the same samples."""
    import fsspec

    _toy(tmp_path / "ds", num=12)
    memory = fsspec.filesystem("memory")
    memory.put(str(tmp_path / "ds"), "/remote-ds", recursive=True)
    try:
        urls = shard_urls("memory://remote-ds")
        assert all(u.startswith("memory://") for u in urls) and len(urls) == 2
        remote = [decode_sample(raw) for url in urls for raw in read_raw_samples(url)]
        local = [decode_sample(raw) for url in shard_urls(tmp_path / "ds") for raw in read_raw_samples(url)]
        assert [s.key for s in remote] == [s.key for s in local]
        assert all(np.array_equal(np.asarray(r.image), np.asarray(q.image)) for r, q in zip(remote, local))
        streamed = list(dataset_stream("memory://remote-ds", 32, epochs=1))
        assert sorted(s["key"] for s in streamed) == sorted(s.key for s in local)
    finally:
        memory.rm("/remote-ds", recursive=True)
