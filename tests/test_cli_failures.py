"""The CLI as a careful user meets it: every check happens before the work, one line, exit 2, nothing left.

Unwritable outputs are made two ways: a file where a folder is needed (works for every user, root too)
and a read-only folder (root writes anyway, so those cases are skipped as root). Training messages on
SIGINT/SIGTERM and resuming are tested in test_training_driver.py and test_training_ddp.py.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import posedraw.pipelines
from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.toy import ToyMaker
from tests.cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
BUILTIN = REPO / "src" / "posedraw" / "builtin" / "toy-figures"
STANDING = REPO / "examples" / "poses" / "standing.json"
ROOT = os.geteuid() == 0


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A regular file: every output path under it cannot be made."""
    path = tmp_path / "afile"
    path.write_text("x")
    return path


@pytest.fixture
def no_models(monkeypatch):
    """Fails a test that loads a model: the checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the output was checked")

    monkeypatch.setattr(posedraw.pipelines, "load_pipeline", refuse)


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


OUTPUT_COMMANDS = [
    ("generate", "--pose", STANDING, "--out", "{out}"),
    ("pose", "convert", STANDING, "{out}/x.json", "--to", "openpose"),
    ("pose", "render", STANDING, "{out}/x.png"),
    ("eval", "pose", "missing.png", "--json", "{out}/r.json"),
    ("data", "toy", "--num", "2", "--out", "{out}/toy"),
    ("train", "ldm", "--config", "c.yaml", "--latents", "l", "--vq", BUILTIN, "--out", "{out}/run"),
]


@pytest.mark.parametrize("command", OUTPUT_COMMANDS, ids=lambda c: " ".join(map(str, c[:2])))
def test_an_output_under_a_file_is_refused_before_any_work(capsys, tmp_path, blocked, no_models, command):
    before = files_under(tmp_path)
    args = [str(a).format(out=blocked / "sub") for a in command]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"error: {blocked / 'sub'}") and f"({blocked} is a file, not a folder)" in line
    assert files_under(tmp_path) == before


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders; the file-in-the-way cases cover the check")
@pytest.mark.parametrize("command", OUTPUT_COMMANDS, ids=lambda c: " ".join(map(str, c[:2])))
def test_an_output_in_a_read_only_folder_is_refused_before_any_work(capsys, tmp_path, no_models, command):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, _, err = run_cli(capsys, *[str(a).format(out=folder) for a in command])
        assert (code == 2 and f"({folder} is not writable)" in one_line(err)) or "is not writable" in one_line(err)
        assert files_under(folder) == []
    finally:
        folder.chmod(0o755)


def test_generate_into_an_existing_file_says_it_is_a_file(capsys, tmp_path, no_models):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"png")
    code, _, err = run_cli(capsys, "generate", "--pose", STANDING, "--out", photo)
    assert code == 2 and one_line(err) == f"error: {photo}: is a file; expected a folder to write into"


def test_a_missing_vq_is_refused_before_the_training_data_is_read(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "ldm", "--config", "nope.yaml", "--latents", "nope", "--vq",
                           tmp_path / "nope", "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and one_line(err) == f"error: {tmp_path / 'nope'}: expected a model folder with vq/config.json " \
        "(made by convert or train vq)"  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_an_unknown_precision_is_one_line(capsys, tmp_path):
    config = REPO / "src/posedraw/configs/ldm-toy.yaml"
    code, _, err = run_cli(capsys, "train", "ldm", "--config", config, "--latents", tmp_path, "--vq", BUILTIN,
                           "--precision", "foo", "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and one_line(err).startswith("error: --precision: expected one of 32-true, bf16-mixed")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--guidance", "-3"), "error: --guidance: expected a number "),
        (("--top-p", "2"), "error: --top-p: a diffusion model does not take it"),
        (("--model", "builtin:transformer", "--sampler", "ddim"), "error: --sampler: a transformer model does not"),
        (("--model", "builtin:transformer", "--steps", "3"), "error: --steps: a transformer model does not take it"),
        (("--num", "-1"), "error: Invalid value for '--num'"),
        (("--steps", "0"), "error: --steps: expected an integer "),
        (("--grid", "true"), "error: Got unexpected extra argument"),
    ],
)
def test_options_out_of_range_or_for_another_model_are_one_line(capsys, tmp_path, args, message):
    code, _, err = run_cli(capsys, "generate", "--pose", STANDING, "--out", tmp_path / "o", *args)
    assert code == 2 and one_line(err).startswith(message)
    assert not (tmp_path / "o").exists()


def test_pose_dir_messages_say_what_is_wrong(capsys, tmp_path, blocked):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {blocked: f"error: --pose-dir {blocked}: is a file; expected a folder of pose files (or --pose FILE)",
             empty: f"error: --pose-dir {empty}: no *.json in {empty}",
             tmp_path / "gone": f"error: --pose-dir {tmp_path / 'gone'}: no such folder"}  # fmt: skip
    for folder, message in cases.items():
        code, _, err = run_cli(capsys, "generate", "--pose-dir", folder, "--out", tmp_path / "o")
        assert code == 2 and one_line(err) == message


def test_eval_of_a_missing_png_says_no_such_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "eval", "pose", tmp_path / "missing.png")
    assert code == 2 and one_line(err) == f"error: {tmp_path / 'missing.png'}: no such file"


def test_an_all_absent_pose_names_its_file(capsys, tmp_path):
    doc = json.loads(STANDING.read_text())
    doc["people"][0]["joints"] = {name: {"state": "absent"} for name in doc["people"][0]["joints"]}
    path = tmp_path / "absent.json"
    path.write_text(json.dumps(doc))
    code, _, err = run_cli(capsys, "generate", "--pose", path, "--out", tmp_path / "o")
    assert (
        code == 2 and one_line(err) == f"error: {path}: expected at least one joint with a position, the pose has none"
    )


def test_os_errors_on_user_paths_are_one_line_and_debug_shows_the_traceback(capsys, tmp_path, monkeypatch):
    from posedraw.cli import pose as pose_cli

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.json"))

    monkeypatch.setattr(pose_cli, "read_pose", denied)
    code, _, err = run_cli(capsys, "pose", "show", STANDING)
    assert code == 2 and one_line(err) == f"error: {tmp_path / 'x.json'}: Permission denied"
    with pytest.raises(PermissionError):
        run_cli(capsys, "--debug", "pose", "show", STANDING)


def test_flags_have_no_value_placeholder_and_a_negative_form(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "generate", "--help")
    assert code == 0
    grid_line = next(line for line in out.splitlines() if "--grid " in line and "--no-grid" in line)
    assert "<bool>" not in grid_line
    code, _, _ = run_cli(capsys, "generate", "--pose", STANDING, "--no-grid", "--steps", "1", "--out", tmp_path / "o")
    assert code == 0 and [p.name for p in (tmp_path / "o").iterdir()] == ["standing_seed0.png"]


def test_training_the_pose_detector_needs_an_out(capsys):
    code, _, err = run_cli(capsys, "train", "pose-detector", "--steps", "1")
    assert code == 2 and one_line(err) == "error: Missing option '--out'."


def test_data_build_rebuilds_shards_whose_inputs_changed_and_counts_agree(capsys, tmp_path):
    out = tmp_path / "toy"
    first = build_dataset(out, ShardPlan(list(range(6)), 3), ToyMaker(32), 32, progress=False)
    assert (first.shards_built, first.shards_reused, first.shards_listed) == (2, 0, 2)
    again = build_dataset(out, ShardPlan(list(range(6)), 3), ToyMaker(32), 32, progress=False)
    assert (again.shards_built, again.shards_reused) == (0, 2)
    changed = build_dataset(out, ShardPlan([0, 1, 2, 3, 4, 7], 3), ToyMaker(32), 32, progress=False)
    assert (changed.shards_built, changed.shards_reused) == (1, 1)  # only the shard whose inputs changed
    settings = build_dataset(out, ShardPlan([0, 1, 2, 3, 4, 7], 3), ToyMaker(32, max_people=2), 32, progress=False)
    assert settings.shards_built == 2  # another maker setting: every shard is stale
    code, out_text, _ = run_cli(capsys, "data", "toy", "--num", "6", "--per-shard", "3", "--size", "32", "--max-people",
                                "2", "--out", out, "--rebuild", "--workers", "1")  # fmt: skip
    assert code == 0 and "shards built 2, reused 0; dataset.json lists 2" in out_text
    index = json.loads((out / "dataset.json").read_text())
    assert len(index["shards"]) == 2 and index["samples"] == 6


def test_a_skipped_input_s_manifest_row_agrees_with_its_reason():
    from posedraw.data.filters import FilterConfig
    from posedraw.data.ingest import Item, RealMaker, learn_statistics
    from posedraw.data.toy import make_toy_sample
    from posedraw.pose import write_pose

    folder = Path(__import__("tempfile").mkdtemp())
    toy = make_toy_sample(3, 64)
    image, keypoints = folder / "1.png", folder / "1.json"
    toy.image.save(image)
    write_pose(toy.pose, keypoints)
    item = Item("1", str(image), str(keypoints), ("tag",), "g", False)
    visible = int(toy.pose.visible.sum())
    config = FilterConfig(min_visible_joints=visible + 1, check_skeleton=False, check_borders=False, min_image_side=8)
    sample, row = RealMaker(64, config, learn_statistics([item]))(item)
    shutil.rmtree(folder)
    assert sample is None and row["reason"] == f"too few visible joints ({visible} < {visible + 1})"
    assert row["visible_joints"] == visible


def test_long_work_prints_progress_lines_when_not_on_a_terminal(capsys):
    from posedraw.progress import tracked

    assert list(tracked(range(20), "encoding")) == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("encoding: 2/20 (10%)") and lines[-1].startswith("encoding: 20/20 (100%)")
    assert len(lines) == 10 and all(line.endswith(" left") for line in lines)


# --- small defects -------------------------------------------------------------------------------------


def test_two_pose_files_with_the_same_stem_get_distinct_outputs(capsys, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(STANDING, tmp_path / folder / "pose.json")
    code, _, _ = run_cli(capsys, "generate", "--pose", tmp_path / "a/pose.json", "--pose", tmp_path / "b/pose.json",
                         "--steps", "1", "--out", tmp_path / "o")  # fmt: skip
    assert code == 0 and sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_pose_seed0.png", "b_pose_seed0.png"]


def test_loading_a_clip_leaves_the_caller_s_random_stream_alone():
    from posedraw.models.clip import TINY, ClipSpec, load_clip

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_clip(ClipSpec(TINY, None, None))
    assert torch.equal(torch.rand(3), expected)


def test_atomic_writes_never_change_the_umask(tmp_path, monkeypatch):
    from posedraw import io

    monkeypatch.setattr(os, "umask", lambda *a: (_ for _ in ()).throw(AssertionError("umask changed")))
    io.write_text_atomic(tmp_path / "f.txt", "x")
    with io.atomic_dir(tmp_path / "d") as folder:
        (folder / "g").write_text("y")
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~io._UMASK
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~io._UMASK


def test_the_fixtures_are_found_by_rule_not_by_one_machine_s_path(tmp_path):
    from tests.conftest import find_fixtures

    shared = tmp_path / "dev" / "shared" / "fixtures"
    shared.mkdir(parents=True)
    (shared / "README.md").write_text("fixtures")
    repo = tmp_path / "dev" / "checkout"
    assert find_fixtures(repo, {}) == shared
    assert find_fixtures(tmp_path / "elsewhere" / "checkout", {}) is None
    assert find_fixtures(tmp_path / "elsewhere" / "checkout", {"POSEDRAW_FIXTURES": str(shared)}) == shared


def test_a_real_input_s_fingerprint_follows_its_files_not_its_tags(tmp_path):
    from posedraw.data.building import fingerprint
    from posedraw.data.ingest import Item

    image, keypoints = tmp_path / "1.png", tmp_path / "1.json"
    image.write_bytes(b"png")
    keypoints.write_text("{}")
    item = Item("1", str(image), str(keypoints), (str(image),))  # a tag spelled like a file is just a tag
    before = fingerprint([item], ToyMaker(32), "jpg")
    assert fingerprint([item], ToyMaker(32), "jpg") == before
    keypoints.write_text('{"people": []}')  # the keypoint file changed: its shard is stale
    assert fingerprint([item], ToyMaker(32), "jpg") != before
