"""Two machines, each with one process, as `--num-nodes 2` runs them: here two `posedraw` commands on
127.0.0.1 (NODE_RANK, MASTER_ADDR, MASTER_PORT), each `--devices 1`. The run must be the same data-parallel
run as two processes on one machine: same world size, the same batches per rank, the same weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from posedraw.train.ranks import is_first_process

from .test_training_ddp import POSEDRAW, _ranks_agree
from .tiny_world import TINY_TRANSFORMER, write_config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(config, world, out, devices: int, nodes: int) -> list[str]:
    return [POSEDRAW, "train", "transformer", "--config", str(config), "--codes", str(world / "cache"),
            "--vq", str(world / "vq"), "--out", str(out), "--device", "cpu", "--max-steps", "3",
            "--devices", str(devices), "--num-nodes", str(nodes)]  # fmt: skip


@pytest.mark.slow  # two training processes per run
def test_two_nodes_of_one_process_train_as_two_processes_on_one_machine(world, tmp_path):
    config = write_config(tmp_path, "tf", TINY_TRANSFORMER)
    # one thread per process on both sides: Lightning gives each CPU process cpu_count / its machine's ranks
    # threads, and another thread count rounds the float sums differently
    threads = {**os.environ, "OMP_NUM_THREADS": "1"}
    one_machine = tmp_path / "one-machine"
    command = _command(config, world, one_machine, 2, 1)
    result = subprocess.run(command, env=threads, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]

    two_nodes = tmp_path / "two-nodes"  # one folder both nodes see, as a cluster's shared file system
    env = {**threads, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    command = _command(config, world, two_nodes, 1, 2)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    nodes = [subprocess.Popen(command, env={**env, "NODE_RANK": str(rank)}, **pipes) for rank in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-2000:]
    assert outputs[0][0].count("model saved to") == 1 and "model saved to" not in outputs[1][0]  # node 0 exports
    assert _ranks_agree(two_nodes) == _ranks_agree(one_machine)  # world size 2, the same weights on every rank
    record = json.loads((two_nodes / "run.json").read_text())
    assert record["steps"] == 3


@pytest.mark.parametrize(
    "env, first",
    [
        ({}, True),  # one process
        ({"LOCAL_RANK": "1"}, False),  # a rank Lightning started on this machine
        ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, False),  # machine 1 of a run started by hand
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),  # torchrun, machine 0
        ({"RANK": "8", "LOCAL_RANK": "0"}, False),  # torchrun, machine 1: LOCAL_RANK alone would say first
        ({"SLURM_PROCID": "8", "SLURM_LOCALID": "0"}, False),  # srun, machine 1
        ({"SLURM_PROCID": "0"}, True),
    ],
)
def test_only_global_rank_zero_is_the_first_process_under_every_launcher(monkeypatch, env, first):
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_first_process() is first
