"""Data-parallel training through the installed `posedraw` command, 2 CPU processes (gloo) standing in for 2
GPUs, as a cluster job runs it: the ranks train, stop and resume together, end together when one fails,
and the exported models draw."""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import torch

from posedraw.data.order import reader_plan
from posedraw.pipelines import load_pipeline
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.pose import read_pose

from .tiny_world import TINY_LDM, TINY_TRANSFORMER, write_config
from .training_helpers import ranks_agree, train_command

REPO = Path(__file__).resolve().parents[1]
POSE = REPO / "examples" / "poses" / "standing.json"

pytestmark = pytest.mark.slow  # two training processes per test


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains `text` (ranks left behind)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_ldm_on_two_processes_stops_together_on_sigterm_resumes_and_draws(world, tmp_path):
    config = write_config(tmp_path, "ldm", {**TINY_LDM, "train": {**TINY_LDM["train"], "checkpoint_every": 2}})
    out = tmp_path / "run"
    command = train_command("ldm", config, world / "cache", world / "vq", out, "--max-steps", "500")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / "checkpoints" / "last.ckpt").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # to rank 0 only: the other rank must stop after the same step
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    stopped = re.search(r"interrupted at step (\d+), saved .*last\.ckpt; rerun the same command to continue", err)
    assert stopped, err[-2000:]
    step = int(stopped[1])
    time.sleep(1)
    assert not _processes_mentioning(str(out))
    resumed = subprocess.run([*command[:-2], "--max-steps", str(step + 2)], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from step {step} of {step + 2}" in resumed.stderr
    assert resumed.stdout.count("pipeline saved to") == 1  # rank 0 exports and reports
    digests = ranks_agree(out)
    assert digests[0] == digests[1]
    pipeline = KeypointLDMPipeline.from_pretrained(out / "model")
    images = pipeline([read_pose(POSE)], seeds=[0], steps=2).images
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()


def test_transformer_on_two_processes_from_a_one_shard_cache(two_process_run):
    """The session's two-process run (tests/training_helpers.py): one shard for two ranks, split by sample."""
    result = two_process_run.result
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("model saved to") == 1
    assert "step 4/4 (100%)" in result.stderr  # progress lines when not on a terminal
    digests = ranks_agree(two_process_run.out)
    assert digests[0] == digests[1]
    pipeline = load_pipeline(two_process_run.out / "model", "cpu")
    out_images = pipeline([read_pose(POSE)], seeds=[0])
    assert out_images.images.shape == (1, 3, 32, 32)


def _damage_codes(shard: Path) -> None:
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members:
            data = b"not an array" if member.name.endswith(".codes.npy") else data
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def test_a_failing_rank_ends_the_whole_run(world, tmp_path):
    """Rank 0 fails on a damaged shard while rank 1 trains (a failing child rank is Lightning's case: its
    observer kills the others). A rank left waiting for its peer would wait half an hour: the run's timeout
    (300 s) catches that."""
    failing_rank = 0
    cache = shutil.copytree(world / "cache", tmp_path / "cache")  # damaged here, not in the shared world
    index = json.loads((cache / "dataset.json").read_text())
    read_by_rank = {s for s, _ in reader_plan(index["counts"], 0, 0, failing_rank, 2)}
    assert len(read_by_rank) == 1  # two shards of 12, one per rank
    _damage_codes(cache / index["shards"][read_by_rank.pop()])
    out = tmp_path / "run"
    config = write_config(tmp_path, "tf", TINY_TRANSFORMER)
    command = train_command("transformer", config, cache, world / "vq", out, "--max-steps", "50")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert re.search(r"error: .*shards/\d+\.tar: sample toy\d+ is unreadable", result.stderr), result.stderr[-2000:]
    time.sleep(1)
    assert not _processes_mentioning(str(out))
