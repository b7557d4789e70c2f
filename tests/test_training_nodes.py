"""Two machines, each with one process, as `--num-nodes 2` runs them: here two `posedraw` commands on
127.0.0.1 (NODE_RANK, MASTER_ADDR, MASTER_PORT), each `--devices 1`. The run must be the same data-parallel
run as two processes on one machine: same world size, the same batches per rank, the same weights."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from posedraw.train.ranks import is_first_process

from .training_helpers import one_thread_per_process, ranks_agree, train_command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_two_nodes(config, world, out, steps: str) -> tuple[list[subprocess.Popen], list[tuple[str, str]]]:
    """Two machines of one process each on 127.0.0.1 (NODE_RANK 0 and 1) training to `out`; their output."""
    env = {**one_thread_per_process(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    command = train_command("transformer", config, world / "cache", world / "vq", out,
                            "--max-steps", steps, "--num-nodes", "2", devices=1)  # fmt: skip
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    nodes = [subprocess.Popen(command, env={**env, "NODE_RANK": str(rank)}, **pipes) for rank in (0, 1)]
    return nodes, [node.communicate(timeout=300) for node in nodes]


@pytest.mark.slow  # two training processes
def test_two_nodes_of_one_process_train_as_two_processes_on_one_machine(two_process_run, tmp_path):
    """Compared with the session's run of two processes on one machine (tests/training_helpers.py)."""
    one_machine = two_process_run
    assert one_machine.result.returncode == 0, one_machine.result.stderr[-2000:]
    world, steps = one_machine.world, str(one_machine.steps)
    for attempt in range(3):  # another test's processes may take the free port before node 0 binds it
        two_nodes = tmp_path / f"two-nodes-{attempt}"  # one folder both nodes see, as a cluster's shared disk
        nodes, outputs = _start_two_nodes(one_machine.config, world, two_nodes, steps)
        if not any("address already in use" in err.lower() for _, err in outputs):
            break
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-2000:]
    assert outputs[0][0].count("model saved to") == 1 and "model saved to" not in outputs[1][0]  # node 0 exports
    assert ranks_agree(two_nodes) == ranks_agree(one_machine.out)  # world size 2, the same weights on every rank
    record = json.loads((two_nodes / "run.json").read_text())
    assert record["steps"] == one_machine.steps


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
