"""Checks the command line and the studio share: the same values refused with the same words."""

from __future__ import annotations

import json

import pytest

from posedraw.errors import PosedrawError
from posedraw.pipelines.drawing import MAX_SEED, seed_run
from posedraw.pose import parse_pose
from posedraw.studio.requests import Limits, Models
from tests.cli_helpers import run_cli
from tests.studio_helpers import STANDING, builtin_pipelines, small_limits_client  # skips without fastapi


def test_a_seed_run_is_every_seed_from_the_first_and_its_last_seed_is_checked():
    assert seed_run(5, 3) == [5, 6, 7]
    assert seed_run(MAX_SEED, 1) == [MAX_SEED]
    with pytest.raises(PosedrawError, match=r"^--num \(the last seed, --seed \+ --num - 1\): expected a whole"):
        seed_run(MAX_SEED, 2)
    with pytest.raises(PosedrawError, match=r"^seed: expected a whole number from 0 to"):
        seed_run(-1, 1, "seed", "count")


def test_the_cli_and_the_studio_refuse_a_seed_run_past_the_last_seed_alike(capsys, tmp_path):
    (tmp_path / "pose.json").write_text(json.dumps(STANDING))
    code, _, err = run_cli(capsys, "generate", "--pose", tmp_path / "pose.json", "--seed", MAX_SEED, "--num", 2,
                           "--out", tmp_path / "out")  # fmt: skip
    cli = err.strip().removeprefix("error: ")
    with small_limits_client(tmp_path) as client:
        response = client.post("/api/jobs", json={"pose": STANDING, "seed": MAX_SEED, "count": 2})
    assert code == 2 and cli.startswith("--num (the last seed, --seed + --num - 1): expected")
    assert response.status_code == 400
    studio = response.json()["error"]
    assert studio == cli.replace("--num", "count").replace("--seed", "seed")
    assert not (tmp_path / "out").exists()


def test_the_studio_takes_every_seed_the_command_line_takes():
    """One range for both: the studio no longer stops at 2^32."""
    models = Models(dict(builtin_pipelines()), Limits())
    request = models.request({"pose": STANDING, "seed": 2**40, "count": 3})
    assert request.seed == 2**40 and request.count == 3


def test_a_prompt_for_a_model_without_text_is_refused_by_one_check_everywhere(capsys, tmp_path):
    """The command line, the studio and the pipeline call refuse it with the same words (check_options)."""
    refusal = "--prompt: this model was trained without text (it draws from the pose alone)"
    (tmp_path / "pose.json").write_text(json.dumps(STANDING))
    code, _, err = run_cli(capsys, "generate", "--model", "builtin:transformer", "--pose", tmp_path / "pose.json",
                           "--prompt", "red hair", "--out", tmp_path / "out")  # fmt: skip
    assert code == 2 and err == f"error: {refusal}\n"
    models = Models(dict(builtin_pipelines()), Limits())
    with pytest.raises(PosedrawError) as studio:
        models.request({"pose": STANDING, "model": "builtin:transformer", "options": {"prompt": "red hair"}})
    assert getattr(studio.value, "status", None) == 400 and str(studio.value) == f"options: {refusal}"
    pipeline = builtin_pipelines()["builtin:transformer"]
    with pytest.raises(PosedrawError, match=f"^{refusal}$".replace("(", r"\(").replace(")", r"\)")):
        pipeline([parse_pose(STANDING)], seeds=[0], prompt="red hair")
