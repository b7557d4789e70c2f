"""`posedraw demo` wires the whole system together (tiny step counts here; the README has real runs)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline

from .cli_helpers import run_cli

pytestmark = pytest.mark.slow  # five stages, two of them trainings


def test_demo_runs_every_stage_and_reports_fidelity(tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "demo", "--out", tmp_path, "--figures", "64", "--vq-steps", "3", "--ldm-steps", "3", "--device", "cpu"
    )
    assert code == 0, err
    for stage in ("1/5 toy dataset", "2/5 VQ", "3/5 latent cache", "4/5 diffusion", "5/5 drawing 8 held-out"):
        assert stage in out
    assert "pose fidelity (toy detector): PCK@0.1" in out
    grid = np.asarray(Image.open(tmp_path / "demo_grid.png"))
    assert grid.shape == (8 * 64, 2 * 64, 3)  # 8 rows of pose | sample
    pipeline = KeypointLDMPipeline.from_pretrained(tmp_path / "ldm" / "model")
    assert pipeline.pose_encoder.kind == "tokens+maps"
