"""GPU performance at the released sizes: posedraw's training and drawing speed, its model FLOPs utilization,
and the original code's speed on the same chip in the same run. One prepared script for one device call of
at most 8 minutes; it writes its JSON after every measurement (a run cut off keeps what it finished) and
prints a short table last.

Measures (`measures` in the report; a failed one records its error and the rest still run):
- `matmul_peak`: the chip's bf16 matmul rate measured here (a large square matmul), the denominator of MFU.
- `ldm_train`: `posedraw train ldm` through the stage driver (Lightning loop, the latent cache held on the
  device: `--cache-on-device on`, default precision, EMA) on the released keypoint LDM
  (configs/ldm-kp-f4.yaml): samples/s, FLOPs of one training sample (torch.utils.flop_counter over one step's
  forward and backward) and MFU.
- `ldm_train_loader`: the same training through the DataLoader (`--cache-on-device off`): samples/s, and
  `device_cache.speedup`, `ldm_train`'s steps/s over these.
- `ldm_train_vs_original`, `vq_train_vs_original`: one training step each, same batch and inputs, alternating
  (bench/vs_original.py): posedraw in bf16 autocast, the original in fp32 and fp16 autocast (the faster
  named). The original's images go through its first stage every step; posedraw reads its latent cache.
- `transformer_train`: `posedraw train transformer` through the stage driver (configs/transformer-f16.yaml,
  a code cache of a random vq-f16): samples/s, FLOPs, MFU.
- `transformer_sampling_vs_original`: one 16 x 16 image's codes with pose guidance (both branches) and
  without, against taming's loop: codes/s and the seconds of a whole image.
- `diffusion_sampling`: images/s at batch 1 and 16 with the pipeline's default sampler, steps and guidance
  (the model `ldm_train` exported).
- `cold_start`: seconds from a new process to the first image written (`posedraw generate`, that model).
- `diffusion_switches`, `transformer_switches`: one image with each speed switch of the pipelines'
  `accelerate` (torch.compile, channels_last, bf16 weights cast once) against all off, alternating, medians;
  `--tiny` times no compile.
Weights are random or briefly trained; data are toy figures made on the spot; LPIPS and VGG16 are untrained
(no download). The original code is bench/original.py's (scripts/install_original.sh); without it the
comparisons are skipped and say why.

    python bench/gpu_perf.py [--json bench/results/gpu_perf.json]      # CUDA, released sizes
    python bench/gpu_perf.py --tiny --json /tmp/gpu_perf.json          # the same code at toy sizes on the CPU
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_check
import original
import vs_original
from common import alternate, report_header, write_json

REPO = Path(__file__).resolve().parents[1]
#: per size: the toy data, the configs trained through the driver (with overrides), steps, the size of the
#: comparisons (bench/vs_original.py), repeats, the sampling batches and the matmul side
SIZES: dict[str, dict[str, Any]] = {
    "released": {
        "data": {"image": 256, "figures": 64, "per_shard": 16, "workers": 4}, "latent_vq": "vq-f4",
        "code_vq": "vq-f16", "ldm": ("ldm-kp-f4", {}), "transformer": ("transformer-f16", {}), "steps": 40,
        "compare": "released", "repeats": 3, "batches": (1, 16), "matmul": 8192,
    },
    "tiny": {
        "data": {"image": 64, "figures": 8, "per_shard": 8, "workers": 1}, "latent_vq": "vq-toy-f4",
        "code_vq": "vq-toy-f4", "ldm": ("ldm-toy", {"unet": {"model_channels": 32, "channel_mult": [1, 2]},
                                                    "train": {"batch_size": 2, "sample_steps": 2}}),
        "transformer": ("transformer-toy", {"model": {"layers": 1, "width": 32, "heads": 2},
                                            "train": {"batch_size": 2, "warmup_steps": 1}}),
        "steps": 6, "compare": "tiny", "repeats": 1, "batches": (1, 2), "matmul": 256,
    },
}  # fmt: skip
MEASURES = ("matmul_peak", "ldm_train", "ldm_train_loader", "ldm_train_vs_original", "vq_train_vs_original",
            "transformer_train", "transformer_sampling_vs_original", "diffusion_sampling", "cold_start",
            "diffusion_switches", "transformer_switches")  # fmt: skip


def sync_of(device: str) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device == "cuda" else None


def matmul_peak(device: str, n: int) -> dict:
    """FLOP/s of an n x n matmul in bf16 on a GPU (fp32 on a CPU: the dtype its training runs in)."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    repeats = 20 if device == "cuda" else 3
    medians, _ = alternate({"matmul": lambda: [a @ b for _ in range(repeats)]}, 3, 1, sync_of(device))
    rate = 2 * n**3 * repeats / medians["matmul"]
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "tflops": float(f"{rate / 1e12:.4g}"), "_value": rate}


def step_flops(step: Callable[[], Any]) -> float:
    """FLOPs of one call (forward and backward), counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def driver_train(stage_of: Callable[[Path, Path], Any], name: str, overrides: dict, work: Path, device: str,
                 steps: int, run: str = "run") -> tuple[Any, float, Path | None]:  # fmt: skip
    """Train a stage through the driver for `steps` steps into `<kind>-<run>`: (stage, steps/s after the first
    few, model dir)."""
    from posedraw.train.driver import RunOptions, run_stage

    kind = "ldm" if name.startswith("ldm") else "transformer"
    config = gpu_check.write_config(kind, name, overrides, work)  # no sample grids or checkpoints while timed
    out = work / f"{kind}-{run}"
    stage = stage_of(config, out)
    timer = gpu_check.StepTimer(device)
    stage.callbacks.append(timer)
    model = run_stage(stage, RunOptions(out, device=device, max_steps=steps, progress=False))
    return stage, timer.steps_per_s(), model


def detached(module, device: str):
    """A trained stage's module out of its finished Trainer (whose loop no longer takes `self.log`), in training
    mode on `device`, for counting the FLOPs of one more step."""
    module.trainer = None
    return module.to(device).train()


def mfu_fields(flops_per_step: float, batch: int, steps_per_s: float, peak: float | None) -> dict:
    fields = {"batch": batch, "steps_per_s": steps_per_s, "samples_per_s": round(steps_per_s * batch, 2),
              "gflops_per_sample": float(f"{flops_per_step / batch / 1e9:.4g}")}  # fmt: skip
    if peak:
        fields["mfu"] = float(f"{flops_per_step * steps_per_s / peak:.4g}")
    return fields


def ldm_train(size: dict, work: Path, device: str, peak: float | None) -> dict:
    """The released LDM through the stage driver, its FLOPs per step from one step of the trained module."""
    from posedraw.data.latents import collate_cached, read_cache
    from posedraw.train.ldm import ldm_stage

    name, overrides = size["ldm"]
    vq_dir = work / size["latent_vq"]
    stage, steps_per_s, model = driver_train(
        lambda config, out: ldm_stage(config, work / "latents", vq_dir, out, cache_on_device="on"), name, overrides,
        work, device, size["steps"],
    )  # fmt: skip
    module = detached(stage.module, device)
    batch = collate_cached(read_cache(work / "latents", "latent", limit=stage.batch_size))
    batch["latent"] = batch["latent"].to(device)
    optimizer = module.configure_optimizers()
    dtype = torch.bfloat16 if device == "cuda" else None
    flops = step_flops(lambda: vs_original.our_ldm_step(module, optimizer, batch, device, dtype))
    return {"config": name, "through": "posedraw.train.driver.run_stage", **mfu_fields(flops, stage.batch_size,
            steps_per_s, peak), "_value": model}  # fmt: skip


def ldm_train_loader(size: dict, work: Path, device: str, cached_steps_per_s: float | None) -> dict:
    """`ldm_train` again through the DataLoader (device cache off), against `ldm_train`'s steps/s."""
    from posedraw.train.ldm import ldm_stage

    name, overrides = size["ldm"]
    vq_dir = work / size["latent_vq"]
    stage, steps_per_s, _ = driver_train(
        lambda config, out: ldm_stage(config, work / "latents", vq_dir, out, cache_on_device="off"), name, overrides,
        work, device, size["steps"], run="run-loader",
    )  # fmt: skip
    batch = stage.batch_size
    fields = {"batch": batch, "steps_per_s": steps_per_s, "samples_per_s": round(steps_per_s * batch, 2)}
    if cached_steps_per_s:
        fields["device_cache.speedup"] = round(cached_steps_per_s / steps_per_s, 3)
    return fields


def transformer_train(size: dict, work: Path, device: str, peak: float | None) -> dict:
    from posedraw.data.latents import collate_cached, read_cache
    from posedraw.train.transformer import transformer_stage

    name, overrides = size["transformer"]
    vq_dir = work / size["code_vq"]
    stage, steps_per_s, model = driver_train(
        lambda config, out: transformer_stage(config, work / "codes", vq_dir, out), name, overrides, work, device,
        size["steps"],
    )  # fmt: skip
    module = detached(stage.module, device)
    batch = collate_cached(read_cache(work / "codes", "codes", limit=stage.batch_size))
    batch["codes"] = batch["codes"].to(device).long()

    def step() -> None:
        with vs_original.autocast(device, torch.bfloat16 if device == "cuda" else None):
            loss = module.training_step(batch, 0)
        loss.backward()

    flops = step_flops(step)
    return {"config": name, "through": "posedraw.train.driver.run_stage", **mfu_fields(flops, stage.batch_size,
            steps_per_s, peak), "_value": model}  # fmt: skip


#: the fields of a comparison row (bench/vs_original.py) the report keeps besides both sides' seconds
KEPT = ("original_precision", "posedraw_precision", "speedup", "batch", "size", "codes", "posedraw_codes_per_s",
        "original_codes_per_s")  # fmt: skip


def with_samples_per_s(rows: dict[str, dict]) -> dict:
    """A comparison's rows flattened for the report, with samples/s of both sides where a row has a batch."""
    fields: dict[str, Any] = {}
    for key, row in rows.items():
        for side in ("original", "posedraw"):
            fields[f"{key}.{side}_s"] = row[f"{side}_s"]
            if "batch" in row and key.endswith("step"):
                fields[f"{key}.{side}_samples_per_s"] = round(row["batch"] / row[f"{side}_s"], 2)
        fields.update({f"{key}.{k}": v for k, v in row.items() if k in KEPT})
    return fields


def compare(kind: str, size: dict, device: str) -> dict:
    """One of bench/vs_original.py's comparisons, or the reason it cannot run."""
    reason = original.missing_reason()
    if reason:
        return {"skipped": reason}
    compare_size, repeats = size["compare"], size["repeats"]
    if kind == "ldm":
        return with_samples_per_s(vs_original.compare_ldm_train(compare_size, device, repeats))
    if kind == "vq":
        return with_samples_per_s(vs_original.compare_vq_train(compare_size, device, repeats))
    rows = vs_original.compare_transformer(compare_size, device, repeats)
    fields = with_samples_per_s(rows)
    fields["whole_image_guided_s"] = rows["transformer_image_codes_guided"]["posedraw_s"]
    return fields


def diffusion_sampling(model_dir: Path, device: str, batches: tuple[int, ...], repeats: int) -> dict:
    """images/s of the exported pipeline at each batch, its default sampler, steps and guidance."""
    from posedraw.pipelines import load_pipeline

    pipeline = load_pipeline(model_dir, device)
    pipeline.set_progress_bar_config(disable=True)
    pose = vs_original.poses(1)[0]
    ways = {str(b): (lambda b=b: pipeline([pose] * b, seeds=list(range(b)))) for b in batches}
    medians, _ = alternate(ways, repeats, 1, sync_of(device))
    defaults = pipeline.resolved_options({})
    return {"sampler": defaults["sampler"], "steps": defaults["steps"], "guidance": defaults["guidance"],
            **{f"batch_{b}_images_per_s": round(b / medians[str(b)], 3) for b in batches}}  # fmt: skip


#: the speed switches of the diffusion pipeline (KeypointLDMPipeline.accelerate), each timed against "off"
DIFFUSION_SWITCHES = ("compile", "channels_last", "cast_once")


def switch_rows(ways: dict[str, Callable[[], Any]], repeats: int, device: str) -> dict:
    """Each switch's median seconds and speedup against "off", all ways alternating in one loop (a warm-up
    round first: compiling happens there)."""
    medians, _ = alternate(ways, repeats, 1, sync_of(device))
    rows: dict[str, Any] = {"off_s": round(medians["off"], 4)}
    for name, seconds in medians.items():
        if name != "off":
            rows[f"{name}_s"], rows[f"{name}.speedup"] = round(seconds, 4), round(medians["off"] / seconds, 3)
    return rows


def diffusion_switches(model_dir: Path, device: str, tiny: bool, repeats: int) -> dict:
    """One image (batch 1, default sampler and steps) with each switch on, against all off. `--tiny` leaves
    out compile (minutes of compiling on a small CPU; tests/test_compile.py checks it)."""
    from posedraw.pipelines import load_pipeline

    pose = vs_original.poses(1)[0]
    switches = [name for name in DIFFUSION_SWITCHES if not (tiny and name == "compile")]
    ways = {}
    for name in ["off", *switches]:
        pipeline = load_pipeline(model_dir, device).accelerate(**({} if name == "off" else {name: True}))
        pipeline.set_progress_bar_config(disable=True)
        ways[name] = lambda pipeline=pipeline: pipeline([pose], seeds=[0])
    return {"batch": 1, **switch_rows(ways, repeats, device)}


def transformer_switches(model_dir: Path, device: str, tiny: bool, repeats: int) -> dict:
    """One image's codes with pose guidance, the compiled step against the eager cached one (none with
    `--tiny`: see diffusion_switches)."""
    from posedraw.pipelines import load_pipeline

    if tiny:
        return {"skipped": "--tiny: compile is checked by tests/test_compile.py, not timed on a CPU"}
    pose = vs_original.poses(1)[0]
    ways = {}
    for name in ("off", "compile"):
        pipeline = load_pipeline(model_dir, device).accelerate(compile=name == "compile")
        pipeline.set_progress_bar_config(disable=True)
        ways[name] = lambda pipeline=pipeline: pipeline([pose], seeds=[0], guidance=2.0)
    return switch_rows(ways, repeats, device)


def cold_start(model_dir: Path, device: str, work: Path) -> dict:
    """Seconds from starting `posedraw generate` in a new process to its first image on disk."""
    pose = REPO / "examples" / "poses" / "standing.json"
    command = [sys.executable, "-c", "from posedraw.cli.main import run; run()", "generate", "--model",
               str(model_dir), "--pose", str(pose), "--out", str(work / "cold"), "--device", device]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"posedraw generate exited {done.returncode}: {done.stderr[-300:]}")
    if not list((work / "cold").glob("*.png")):
        raise RuntimeError("posedraw generate wrote no image")
    return {"seconds_to_first_image": round(seconds, 2), "command": "posedraw generate (defaults, one pose)"}


def prepare(size: dict, work: Path, device: str) -> None:
    """Toy figures, random VQs for the latent and code caches, and the caches."""
    gpu_check.make_data(size["data"], work, device)
    for vq in {size["latent_vq"], size["code_vq"]}:
        gpu_check.random_vq(vq, work)
    gpu_check.cache(work, work / size["latent_vq"], "latents", device, True, False)
    gpu_check.cache(work, work / size["code_vq"], "codes", device, False, True)


def gpu_perf(device: str, size_name: str, work: Path, save: Callable[[dict], None]) -> dict:
    size = SIZES[size_name]
    results: dict[str, Any] = {}

    def check(name: str, call: Callable[[], dict]) -> Any:
        return gpu_check.run_check(name, results, device, save, call)

    peak = check("matmul_peak", lambda: matmul_peak(device, size["matmul"]))
    prepare(size, work, device)
    ldm_model = check("ldm_train", lambda: ldm_train(size, work, device, peak))
    cached_rate = results["ldm_train"].get("steps_per_s")
    check("ldm_train_loader", lambda: ldm_train_loader(size, work, device, cached_rate))
    check("ldm_train_vs_original", lambda: compare("ldm", size, device))
    check("vq_train_vs_original", lambda: compare("vq", size, device))
    transformer_model = check("transformer_train", lambda: transformer_train(size, work, device, peak))
    check("transformer_sampling_vs_original", lambda: compare("transformer", size, device))
    tiny, repeats = size_name == "tiny", max(3, size["repeats"])
    if ldm_model is not None:
        check("diffusion_sampling", lambda: diffusion_sampling(ldm_model, device, size["batches"], size["repeats"]))
        check("cold_start", lambda: cold_start(ldm_model, device, work))
        check("diffusion_switches", lambda: diffusion_switches(ldm_model, device, tiny, repeats))
    if transformer_model is not None:
        check("transformer_switches", lambda: transformer_switches(transformer_model, device, tiny, repeats))
    return results


TABLE = (  # (measure, field, label) for the closing table
    ("matmul_peak", "tflops", "bf16 matmul TFLOP/s"),
    ("ldm_train", "samples_per_s", "LDM training samples/s (driver)"),
    ("ldm_train", "mfu", "LDM training MFU"),
    ("ldm_train_loader", "device_cache.speedup", "LDM training, device cache vs loader (x)"),
    ("ldm_train_vs_original", "ldm_train_step.speedup", "LDM step vs original (x)"),
    ("vq_train_vs_original", "vq_train_step.speedup", "VQ-f4 step vs original (x)"),
    ("transformer_train", "mfu", "transformer training MFU"),
    ("transformer_sampling_vs_original", "transformer_image_codes_guided.posedraw_codes_per_s",
     "transformer codes/s, guided"),
    ("transformer_sampling_vs_original", "transformer_image_codes_guided.speedup", "vs taming's loop (x)"),
    ("transformer_sampling_vs_original", "whole_image_guided_s", "16x16 image, guided (s)"),
    ("diffusion_sampling", "batch_1_images_per_s", "diffusion images/s, batch 1"),
    ("cold_start", "seconds_to_first_image", "cold start to first image (s)"),
    ("diffusion_switches", "compile.speedup", "diffusion image, compiled (x)"),
    ("diffusion_switches", "channels_last.speedup", "diffusion image, channels_last (x)"),
    ("diffusion_switches", "cast_once.speedup", "diffusion image, bf16 cast once (x)"),
    ("transformer_switches", "compile.speedup", "transformer image, compiled (x)"),
)  # fmt: skip


def table(measures: dict) -> str:
    lines = []
    for measure, field, label in TABLE:
        entry = measures.get(measure, {})
        value = entry.get(field, entry.get("error", entry.get("skipped", "-")))
        lines.append(f"{label:<36} {value}")
    return "\n".join(lines)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """`count` torch CPU threads, also for the processes started meanwhile (OMP_NUM_THREADS), then the
    previous settings again (a test calling main() leaves its process as it was); 0 changes nothing."""
    if not count:
        yield
        return
    previous, variable = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(count)
    os.environ["OMP_NUM_THREADS"] = str(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        if variable is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = variable


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, choices=["cuda", "cpu"], help="default: cuda, cpu with --tiny")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (seconds on a CPU)")
    parser.add_argument("--json", type=Path, help="write the report here (after every measurement)")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 with --tiny, whose small "
                        "ops slow down many times with 2 threads on a busy machine)")  # fmt: skip
    args = parser.parse_args(argv)
    device = args.device or ("cpu" if args.tiny else "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: no CUDA GPU here (use --tiny for the CPU variant)")
    size = "tiny" if args.tiny else "released"
    started = time.perf_counter()
    machine = torch.cuda.get_device_name() if device == "cuda" else None

    def report(measures: dict) -> dict:
        return {**report_header("gpu_perf", machine), "device": device, "torch": torch.__version__, "size": size,
                "original_code": original.missing_reason() or original.RANDOM_LPIPS, "measures": measures,
                "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip

    def save(measures: dict) -> None:
        if args.json:
            write_json(args.json, report(measures))

    with tempfile.TemporaryDirectory(prefix="gpu-perf-") as tmp, torch_threads(args.threads or (1 if args.tiny else 0)):
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        final = report(gpu_perf(device, size, work, save))
    if args.json:
        write_json(args.json, final)
    print(table(final["measures"]))
    return final


def finite_positive(value: Any) -> bool:
    """For the report's readers and tests: a measured number, not nan, inf, zero or negative."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


if __name__ == "__main__":
    main()
