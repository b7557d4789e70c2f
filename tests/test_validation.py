"""Validation during training: held-out poses left out of training, scores logged, the best checkpoint kept
by the real selection code, curves plotted, config errors as one line, and two ranks sharing the poses."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from posedraw.config import load_config, to_dict
from posedraw.data.latents import cache_stream, read_cache
from posedraw.errors import ConfigError
from posedraw.train import validation
from posedraw.train.driver import RunOptions, check_resumable, read_run_record, run_loggers
from posedraw.train.ldm import LDMRunConfig, train_ldm
from posedraw.train.validation import WithoutHeldOut, hold_out, improved

from .cli_helpers import run_cli
from .tiny_world import TINY_LDM, TINY_TRANSFORMER, write_config

POSEDRAW = str(Path(sys.executable).parent / "posedraw")


def _val_rows(run: Path) -> list[dict[str, str]]:
    rows = [r for p in sorted(run.glob("logs/*/metrics.csv")) for r in csv.DictReader(p.open())]
    return [r for r in rows if r.get("val/pck")]


def _ldm_config(folder: Path, **section) -> Path:
    return write_config(folder, "ldm", {**TINY_LDM, "validation": {"poses": 2, "every": 2, "steps": 1, **section}})


@pytest.fixture(scope="module")
def peaked_run(world, tmp_path_factory):
    """A tiny diffusion run validated at steps 2, 4 and 6 whose pck (from a fake scorer) peaks at step 4;
    the drawing, detection, logging and keep-best selection are the real ones."""
    folder = tmp_path_factory.mktemp("peaked")
    sequence = iter([0.2, 0.6, 0.4])
    real_scores = validation.validation_scores

    def fake_scores(*args, **kwargs):
        return {**real_scores(*args, **kwargs), "pck": next(sequence)}

    patch = pytest.MonkeyPatch()
    patch.setattr(validation, "validation_scores", fake_scores)
    try:
        out = folder / "run"
        config = _ldm_config(folder, keep_best="pck")
        train_ldm(config, world / "cache", world / "vq", RunOptions(out=out, max_steps=6, progress=False))
    finally:
        patch.undo()
    return out


@pytest.mark.slow
def test_the_best_checkpoint_is_the_step_where_the_metric_peaked(peaked_run):
    assert [float(r["val/pck"]) for r in _val_rows(peaked_run)] == [0.2, 0.6, 0.4]
    assert [int(r["step"]) for r in _val_rows(peaked_run)] == [2, 4, 6]
    assert read_run_record(peaked_run / "checkpoints" / "best.ckpt")["step"] == 4
    assert read_run_record(peaked_run / "checkpoints" / "last.ckpt")["step"] == 6
    summary = json.loads((peaked_run / "run.json").read_text())["validation"]
    assert (summary["metric"], summary["best_step"], summary["last_step"]) == ("pck", 4, 6)
    assert summary["fell_off"] == pytest.approx(0.2)
    assert {float(r["val/images"]) for r in _val_rows(peaked_run)} == {2}


def test_lower_is_better_for_errors_and_nan_never_wins():
    assert improved("person_count_error", 0.5, 1.0) and not improved("person_count_error", 1.5, 1.0)
    assert improved("pck", 0.7, 0.6) and not improved("pck", 0.5, 0.6)
    assert not improved("pck", float("nan"), None) and improved("fd", 3.0, None)


@pytest.mark.slow
def test_train_curves_plots_the_logged_metrics(peaked_run, capsys, tmp_path):
    target = tmp_path / "curves.png"
    code, out, err = run_cli(capsys, "train", "curves", peaked_run, "-o", target)
    assert code == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "val/pck" not in err
    assert "metrics" in out and not list(tmp_path.glob(".curves*"))


def test_train_curves_of_a_folder_without_logs_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "curves", tmp_path, "-o", tmp_path / "c.png")
    assert code == 2 and err.strip().count("\n") == 0
    assert err.startswith(f"error: {tmp_path}: no training logs") and not (tmp_path / "c.png").exists()


def test_held_out_samples_are_left_out_of_the_training_stream(world):
    stream = cache_stream(world / "cache", "latent", seed=0)
    assert stream.source.counts == [12, 12]
    held = hold_out(stream, 5, world / "cache")
    assert isinstance(stream.source, WithoutHeldOut) and stream.source.counts == [12, 7]
    every = read_cache(world / "cache")
    assert [s["key"] for s in held] == [s["key"] for s in every[-5:]]
    trained = {s["key"] for s in stream._read(stream.plan(0), 0)}
    assert len(trained) == 19 and not trained & {s["key"] for s in held}


def test_holding_out_every_sample_is_a_config_error(world):
    with pytest.raises(ConfigError, match=r"^validation.poses: 24 held-out samples leave none"):
        hold_out(cache_stream(world / "cache", "latent"), 24, world / "cache")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"poses": 2, "colour": 1}, "validation.colour: unknown key; expected one of poses,"),
        ({"poses": 2, "keep_best": "beauty"}, "validation: keep_best: expected one of pck, oks,"),
        ({"keep_best": "pck"}, "validation: keep_best: pck needs validation poses"),
        ({"poses": 2, "keep_best": "fd"}, "validation: keep_best: fd needs an extractor"),
        ({"poses": 2, "features": "eyes"}, "validation: features: expected one of none, toy-detector, inception"),
        ({"poses": 2, "pose_dir": "poses"}, "validation: pose_dir: give held-out poses of the cache"),
        ({"poses": 2, "every": 0}, "validation: every: expected at least 1, got 0"),
        ({"poses": 2, "detector": "nope.safetensors"}, "validation: detector: expected toy, mediapipe or"),
    ],
)
def test_bad_validation_sections_are_config_errors(tmp_path, section, message):
    path = write_config(tmp_path, "ldm", {**TINY_LDM, "validation": section})
    with pytest.raises(ConfigError) as caught:
        load_config(LDMRunConfig, path)
    assert str(caught.value).startswith(f"{path}: {message}") and "\n" not in str(caught.value)


def test_keep_best_on_the_command_line_is_checked_before_training(world, capsys, tmp_path):
    config = write_config(tmp_path, "ldm", TINY_LDM)  # no validation poses
    code, _, err = run_cli(capsys, "train", "ldm", "--config", config, "--latents", world / "cache", "--vq",
                           world / "vq", "--out", tmp_path / "run", "--keep-best", "pck")  # fmt: skip
    assert code == 2 and err.strip() == "error: --keep-best: pck needs validation poses (validation.poses or pose_dir)"
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_run_from_before_validation_existed_resumes(tmp_path):
    config = load_config(LDMRunConfig, write_config(tmp_path, "ldm", TINY_LDM))
    stage = SimpleNamespace(name="ldm", config=config)
    old = {k: v for k, v in to_dict(config).items() if k != "validation"}
    check_resumable({"stage": "ldm", "config": old}, stage, tmp_path)  # no validation section: its defaults
    changed = load_config(LDMRunConfig, _ldm_config(tmp_path))
    with pytest.raises(ConfigError, match=r"validation.poses: 0, now 2"):
        check_resumable({"stage": "ldm", "config": old}, SimpleNamespace(name="ldm", config=changed), tmp_path)


def test_tensorboard_is_left_out_silently_when_not_installed(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a))  # fmt: skip
    assert [type(logger).__name__ for logger in run_loggers(tmp_path)] == ["CSVLogger"]


@pytest.mark.slow
def test_two_ranks_share_the_held_out_poses_and_rank_0_writes(world, tmp_path):
    config = write_config(tmp_path, "tf", {**TINY_TRANSFORMER, "validation": {"poses": 3, "every": 2}})
    out = tmp_path / "run"
    command = [POSEDRAW, "train", "transformer", "--config", str(config), "--codes", str(world / "cache"),
               "--vq", str(world / "vq"), "--out", str(out), "--device", "cpu", "--devices", "2",
               "--max-steps", "4", "--keep-best", "oks"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _val_rows(out)
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert {float(r["val/images"]) for r in rows} == {3}  # rank 0 drew 2, rank 1 drew 1: gathered
    assert len(list(out.glob("logs/*/metrics.csv"))) == 1  # one writer
    assert result.stderr.count("validation at step 2") == 1
    summary = json.loads((out / "run.json").read_text())["validation"]
    assert summary["metric"] == "oks" and summary["best_step"] in (2, 4)
    assert read_run_record(out / "checkpoints" / "best.ckpt")["step"] == summary["best_step"]
