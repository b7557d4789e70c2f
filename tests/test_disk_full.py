"""A full disk and a small $TMPDIR, for real and without root: every writer names the user's file, leaves
no partial or temporary file, and training writes nothing through $TMPDIR.

A full disk is a file size limit (RLIMIT_FSIZE) on this process: Python ignores SIGXFSZ, so a write past the
limit fails with the OS's EFBIG ("File too large"), as a full disk fails with ENOSPC. Only the soft limit is
lowered, so it can be raised again without root.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posedraw import io
from posedraw.train.driver import checkpoint_path
from tests.cli_helpers import run_cli
from tests.test_cli_failures import BUILTIN, STANDING, files_under, one_line
from tests.test_data_build import killed_while_writing
from tests.tiny_world import TINY_LDM, write_config


@contextlib.contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """Files of this process cannot grow past `size` bytes (a disk with `size` bytes free per file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture
def unusable_tmpdir(tmp_path, monkeypatch) -> Path:
    """$TMPDIR is a file: anything written through tempfile's default folder fails. (Setting the variable
    alone would not do: tempfile falls back to /tmp when $TMPDIR is unusable.)"""
    blocked = tmp_path / "tmpdir-is-a-file"
    blocked.write_text("x")
    monkeypatch.setenv("TMPDIR", str(blocked))
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    return blocked


def _safetensors_folder(folder: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(4096)}, str(folder / "weights.safetensors"))


NOISE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # 12 KB as a PNG
WRITERS = {
    "text": (lambda p: io.write_text_atomic(p, "x" * 8192), "out.txt"),
    "image": (lambda p: io.save_image_atomic(Image.fromarray(NOISE), p), "out.png"),
    "torch": (lambda p: io.torch_save_atomic({"w": torch.zeros(4096)}, p), "out.ckpt"),
}  # fmt: skip


@pytest.mark.parametrize("kind", WRITERS)
def test_a_full_disk_names_the_file_being_written_and_leaves_nothing(tmp_path, kind):
    write, name = WRITERS[kind]
    with file_size_limit(1024), pytest.raises(OSError) as failed:
        write(tmp_path / name)
    assert failed.value.errno == errno.EFBIG and failed.value.filename == str(tmp_path / name)
    assert files_under(tmp_path) == []


def test_a_full_disk_while_writing_a_model_folder_names_the_folder(tmp_path):
    with file_size_limit(1024), pytest.raises(OSError) as failed, io.atomic_dir(tmp_path / "model") as folder:
        _safetensors_folder(folder)  # safetensors reports the OS error as its own SafetensorError
    assert failed.value.errno == errno.EFBIG and failed.value.filename == str(tmp_path / "model")
    assert files_under(tmp_path) == []


def test_generate_on_a_full_disk_is_one_line_naming_the_image(capsys, tmp_path):
    out = tmp_path / "out"
    with file_size_limit(512):
        code, _, err = run_cli(capsys, "generate", "--model", BUILTIN, "--pose", STANDING, "--steps", "2", "--out", out)
    error = [line for line in err.replace("\r", "\n").splitlines() if line.strip()][-1]  # after the progress bar
    assert code == 2 and "Traceback" not in err and error == f"error: {out / 'standing_seed0.png'}: File too large"
    assert [p for p in files_under(tmp_path) if Path(p).name.startswith(".")] == []


def _train_ldm(capsys, world: Path, tmp_path: Path, out: Path) -> tuple[int, str]:
    config = write_config(tmp_path, "ldm", TINY_LDM)
    code, _, err = run_cli(capsys, "train", "ldm", "--config", config, "--latents", world / "cache", "--vq",
                           world / "vq", "--out", out, "--max-steps", "1", "--device", "cpu")  # fmt: skip
    return code, err


@pytest.mark.slow
def test_training_on_a_full_disk_names_the_checkpoint_and_leaves_no_partial_file(capsys, world, tmp_path):
    out = tmp_path / "run"
    with file_size_limit(64 * 1024):  # room for the config and logs, not for the checkpoint
        code, err = _train_ldm(capsys, world, tmp_path, out)
    # the run's status line (which data path it takes) comes first; the error is one line after it
    status, error = err.strip().splitlines()
    assert status.startswith("training data:") and code == 2
    assert one_line(error) == f"error: {checkpoint_path(out)}: File too large"
    assert list(checkpoint_path(out).parent.iterdir()) == []


@pytest.mark.slow
def test_training_writes_nothing_through_tmpdir_and_clears_a_killed_save(capsys, world, tmp_path, unusable_tmpdir):
    out = tmp_path / "run"
    killed_while_writing(checkpoint_path(out))
    checkpoints = checkpoint_path(out).parent
    (checkpoints / ".last.ckpt.tmp").write_bytes(b"half")  # earlier versions' temporary name
    (checkpoints / "mine.ckpt").write_bytes(b"keep")
    assert len(list(checkpoints.iterdir())) == 3
    code, err = _train_ldm(capsys, world, tmp_path, out)
    assert code == 0, err
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt", "mine.ckpt"]
    assert torch.load(checkpoint_path(out), map_location="cpu", weights_only=True)["posedraw"]["step"] == 1


def test_a_full_disk_in_a_write_that_names_no_file_names_the_run_folder(tmp_path):
    from posedraw.train.driver import _raise_on_run_folder

    with pytest.raises(OSError) as named:  # Lightning's CSV log appends through a handle that names no file
        _raise_on_run_folder(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert named.value.errno == errno.ENOSPC and named.value.filename == str(tmp_path)
    _raise_on_run_folder(OSError(errno.ECONNRESET, "Connection reset by peer"), tmp_path)  # not about the folder


def test_an_os_error_that_names_no_file_says_how_to_find_it(capsys, monkeypatch):
    from posedraw.cli import pose as pose_cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pose_cli, "read_pose", full)
    code, _, err = run_cli(capsys, "pose", "show", STANDING)
    assert code == 2
    assert one_line(err) == "error: No space left on device (the file is not named: posedraw --debug ... shows where)"
