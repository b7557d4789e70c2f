"""bench/gpu_check.py at toy sizes on the CPU: the same code the GPU check runs, every check passing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # trains and resumes three stages


def test_gpu_check_runs_every_check_at_toy_sizes_on_the_cpu(tmp_path, capsys, monkeypatch):
    """Its `main` with its command-line arguments, in this process: no second start of torch and Lightning."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["bench/gpu_check.py", "--device", "cpu", "--tiny", "--json", str(tmp_path / "check.json")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        bench.main()
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report == json.loads((tmp_path / "check.json").read_text())
    checks = report["checks"]
    assert report["passed"] and all(c["pass"] for c in checks.values())
    assert set(checks) == {"data", "train_vq", "cache_latents", "cache_codes", "train_ldm", "train_transformer",
                           "draw", "sample_transformer", "tune"}  # fmt: skip
    for stage in ("train_vq", "train_ldm", "train_transformer"):
        assert checks[stage]["steps"] == 4 and checks[stage]["resumed_at"] == 2 and checks[stage]["steps_per_s"] > 0
    assert checks["draw"]["images_per_s"] > 0 and checks["sample_transformer"]["codes_per_s"] > 0
