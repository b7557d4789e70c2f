"""bench/gpu_perf.py at toy sizes on the CPU (the code the GPU run executes), and the alternating timer the
benches share (bench/common.py)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import gpu_perf  # noqa: E402
import original  # noqa: E402
from common import alternate  # noqa: E402


def close(a: float, b: float, tolerance: float = 0.05) -> bool:
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=0.011)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("perf") / "gpu_perf.json"
    threads = torch.get_num_threads()
    final = gpu_perf.main(["--tiny", "--json", str(path)])
    assert final == json.loads(path.read_text())
    assert final["torch_threads"] == 1  # --tiny runs on one thread ...
    assert torch.get_num_threads() == threads  # ... and leaves the calling process as it was
    return final


@pytest.mark.slow  # the bench's --tiny run
def test_every_measure_is_reported_and_none_failed(report):
    measures = report["measures"]
    assert list(measures) == list(gpu_perf.MEASURES)
    failed = {name: m.get("error") for name, m in measures.items() if not m["pass"]}
    assert not failed


@pytest.mark.slow  # the bench's --tiny run
def test_training_reports_samples_per_second_flops_and_mfu_that_agree(report):
    peak = report["measures"]["matmul_peak"]["tflops"] * 1e12
    assert gpu_perf.finite_positive(peak)
    for name in ("ldm_train", "transformer_train"):
        m = report["measures"][name]
        assert all(gpu_perf.finite_positive(m[k]) for k in ("steps_per_s", "samples_per_s", "gflops_per_sample", "mfu"))
        assert close(m["samples_per_s"], m["steps_per_s"] * m["batch"])
        assert close(m["mfu"], m["gflops_per_sample"] * 1e9 * m["samples_per_s"] / peak)
        assert m["through"] == "posedraw.train.driver.run_stage"


@pytest.mark.slow  # the bench's --tiny run
def test_drawing_reports_images_per_second_at_each_batch_with_the_default_options(report):
    from posedraw.pipelines.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS

    sampling = report["measures"]["diffusion_sampling"]
    batches = gpu_perf.SIZES["tiny"]["batches"]
    assert all(gpu_perf.finite_positive(sampling[f"batch_{b}_images_per_s"]) for b in batches)
    assert (sampling["sampler"], sampling["steps"]) == (DEFAULT_SAMPLER, DEFAULT_STEPS)
    assert gpu_perf.finite_positive(report["measures"]["cold_start"]["seconds_to_first_image"])


@pytest.mark.slow  # the bench's --tiny run
def test_comparisons_name_both_sides_or_why_the_original_is_missing(report):
    comparisons = {
        "ldm_train_vs_original": ("ldm_train_step", "ldm_unet_step"),
        "vq_train_vs_original": ("vq_train_step",),
        "transformer_sampling_vs_original": ("transformer_image_codes", "transformer_image_codes_guided"),
    }
    for name, rows in comparisons.items():
        m = report["measures"][name]
        if original.missing_reason():
            assert "install_original.sh" in m["skipped"]
            continue
        for row in rows:
            theirs, ours = m[f"{row}.original_s"], m[f"{row}.posedraw_s"]
            assert gpu_perf.finite_positive(theirs) and gpu_perf.finite_positive(ours)
            assert m[f"{row}.original_precision"] == "fp32" and m[f"{row}.posedraw_precision"] == "fp32"
            assert close(m[f"{row}.speedup"], theirs / ours)
    ldm = report["measures"]["ldm_train_vs_original"]
    if "skipped" not in ldm:
        batch = ldm["ldm_train_step.batch"]
        assert close(ldm["ldm_train_step.posedraw_samples_per_s"], batch / ldm["ldm_train_step.posedraw_s"])


def test_alternate_runs_the_ways_in_turn_and_leaves_the_warmup_out():
    calls: list[str] = []
    medians, last = alternate({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}, 2, 1)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert set(medians) == {"a", "b"} and all(s >= 0 for s in medians.values())
    assert last == {"a": 1, "b": 2}


@pytest.mark.slow  # the bench's --tiny run
def test_each_speed_switch_is_timed_against_all_off_in_the_same_run(report):
    """--tiny times channels_last and the bf16 cast against all off (compile only on the GPU run)."""
    rows = report["measures"]["diffusion_switches"]
    assert gpu_perf.finite_positive(rows["off_s"])
    for switch in ("channels_last", "cast_once"):
        assert close(rows[f"{switch}.speedup"], rows["off_s"] / rows[f"{switch}_s"], 1e-2)
    assert "compile_s" not in rows
    assert "skipped" in report["measures"]["transformer_switches"]
