"""GPU check: every training stage at the original sizes on one GPU, then drawing, sampling and tuning.

Trains `vq-f4` (256 px), `ldm-kp-f4` and `transformer-f16` for `--steps` steps each through the stage driver
(the default precision of the device: bf16-mixed on a recent GPU; EMA for the diffusion model), stopping
half way and resuming once; then draws with the diffusion pipeline, samples the transformer with its KV
cache and tunes one drawing with CLIP. Weights are random or briefly trained (speed and memory do not depend
on them; no download is needed: LPIPS gets an untrained VGG16, CLIP ViT-B-32 untrained weights). Data are
toy figures made on the spot. Prints one JSON object: steps/s, images/s, peak GPU memory and pass/fail per
check.

    python bench/gpu_check.py [--json bench/results/gpu_check.json]   # CUDA, original sizes
    python bench/gpu_check.py --device cpu --tiny                       # the same code at toy sizes (a test)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.callbacks import Callback

from posedraw.config import merge_config, read_config

REPO = Path(__file__).resolve().parents[1]

#: per size: figures to make (and the data build's workers), steps per stage, config names and overrides
#: (deep-merged into the shipped YAML)
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "image": 256, "figures": 256, "per_shard": 64, "workers": 4, "steps": 50, "draw": 4, "draw_steps": 20,
        "tune_steps": 10,
        "clip": "ViT-B-32", "vq": "vq-f4", "code_vq": "vq-f16", "ldm": "ldm-kp-f4", "transformer": "transformer-f16",
        "overrides": {
            "vq": {"loss": {"perceptual_backbone": "untrained", "disc_start": 25}},
            "ldm": {},
            "transformer": {"train": {"warmup_steps": 10}},
        },
    },
    "tiny": {
        "image": 64, "figures": 16, "per_shard": 8, "workers": 1, "steps": 4, "draw": 2, "draw_steps": 3,
        "tune_steps": 2,
        "clip": "posedraw-tiny-clip", "vq": "vq-toy-f4", "code_vq": "vq-toy-f4", "ldm": "ldm-toy",
        "transformer": "transformer-toy",
        "overrides": {
            "vq": {"loss": {"disc_start": 2}, "train": {"batch_size": 2}},
            "ldm": {"train": {"batch_size": 4}},
            "transformer": {"model": {"layers": 2, "width": 64}, "train": {"batch_size": 4, "warmup_steps": 2}},
        },
    },
}  # fmt: skip
#: the checks a full run makes (data, three trainings, two caches, drawing, sampling, tuning)
CHECKS = 9
#: called with the results so far after every check
Saver = Callable[[dict], None]
#: no sample grids or periodic checkpoints inside the measured steps (the transformer writes no grids)
QUIET = {
    "vq": {"train": {"sample_every": 10**9, "checkpoint_every": 10**9}},
    "ldm": {"train": {"sample_every": 10**9, "checkpoint_every": 10**9}},
    "transformer": {"train": {"checkpoint_every": 10**9}},
}


def write_config(stage: str, name: str, overrides: dict, work: Path) -> Path:
    config = read_config(REPO / "configs" / f"{name}.yaml")
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merge_config(merge_config(config, QUIET[stage]), overrides)))
    return path


class StepTimer(Callback):
    """Wall time of every training step (the device synchronized), for steps/s after the first few."""

    def __init__(self, device: str) -> None:
        self.device, self.times, self.first_step = device, [], None

    def on_train_batch_end(self, trainer, module, *args) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())
        if self.first_step is None:
            from posedraw.train.driver import training_step_of

            self.first_step = training_step_of(trainer, module) - 1

    def steps_per_s(self) -> float | None:
        warmup = 3 if len(self.times) > 6 else 0
        gaps = [b - a for a, b in zip(self.times[warmup:], self.times[warmup + 1 :])]
        return round(1 / statistics.median(gaps), 3) if gaps else None


def peak_memory_gb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


def reset_memory(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_check(name: str, results: dict, device: str, save: Saver, check: Callable[[], dict]) -> Any:
    """Run one check; record its figures, pass/fail, seconds and peak memory (a failure is recorded, not
    raised, so every later check that does not depend on it still runs), then save the results so far (a
    run cut off by a time limit still reports the checks it finished)."""
    reset_memory(device)
    started = time.perf_counter()
    try:
        figures = check()
        results[name] = {"pass": True, **{k: v for k, v in figures.items() if not k.startswith("_")}}
        outcome = figures.get("_value")
    except Exception as exc:  # a check's failure is its result
        results[name] = {"pass": False, "error": f"{exc.__class__.__name__}: {exc}"[:500]}
        traceback.print_exc(file=sys.stderr)
        outcome = None
    results[name].update(seconds=round(time.perf_counter() - started, 1), peak_memory_gb=peak_memory_gb(device))
    save(results)
    return outcome


def train_twice(build: Callable[[Path], Any], out: Path, steps: int, device: str) -> dict:
    """Train to steps // 2, then resume to `steps` with a new process-state (as a rerun would)."""
    from posedraw.train.driver import RunOptions, run_stage

    timers = []
    for target in (steps // 2, steps):
        stage = build(out)
        timer = StepTimer(device)
        stage.callbacks.append(timer)
        model = run_stage(stage, RunOptions(out, device=device, max_steps=target, progress=False))
        timers.append(timer)
        loss = stage.module.trainer.callback_metrics.get("loss", stage.module.trainer.callback_metrics.get("rec"))
    if timers[1].first_step != steps // 2:
        raise RuntimeError(f"the second run started at step {timers[1].first_step}, not {steps // 2}")
    if loss is None or not torch.isfinite(torch.as_tensor(loss)):
        raise RuntimeError(f"loss is {loss}")
    record = json.loads((out / "run.json").read_text())
    return {"steps": record["steps"], "resumed_at": timers[1].first_step, "precision": record["precision"],
            "steps_per_s": timers[1].steps_per_s(), "loss": round(float(loss), 4), "_value": model}  # fmt: skip


def make_data(size: dict, work: Path, device: str) -> dict:
    from posedraw.data.building import ShardPlan, build_dataset
    from posedraw.data.toy import ToyMaker

    plan = ShardPlan(list(range(size["figures"])), size["per_shard"])
    build_dataset(work / "toy", plan, ToyMaker(size["image"]), size["image"], workers=size["workers"], progress=False)
    return {"figures": size["figures"], "image": size["image"]}


def cache(work: Path, vq_dir: Path, out: str, device: str, latents: bool, codes: bool) -> dict:
    from posedraw.data.latents import cache_dataset
    from posedraw.models.vq import load_vq

    index = cache_dataset(work / "toy", load_vq(vq_dir, device), work / out, latents, codes, progress=False)
    return {"latent_shape": index["latent_shape"], "num_codes": index["num_codes"]}


def random_vq(name: str, work: Path) -> Path:
    """An untrained VQ of a shipped config (codes for the transformer: their values do not change its cost)."""
    from posedraw.config import load_config
    from posedraw.models.vq import build_vq, save_vq
    from posedraw.train.vq import VQRunConfig

    torch.manual_seed(0)
    return save_vq(build_vq(load_config(VQRunConfig, REPO / "configs" / f"{name}.yaml").model).eval(), work / name)


def draw(model_dir: Path, device: str, count: int, steps: int) -> dict:
    from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
    from posedraw.pose import read_pose

    pipeline = KeypointLDMPipeline.from_pretrained(model_dir).to(device)
    pipeline.set_progress_bar_config(disable=True)
    most = pipeline.pose_encoder.config.max_people  # the original sizes draw one person: no two-figure scene
    poses = [read_pose(p) for p in sorted((REPO / "examples" / "poses").glob("*.json"))]
    poses = ([p for p in poses if p.num_people <= most] * count)[:count]
    pipeline(poses, seeds=list(range(count)), sampler="dpm++", steps=2)  # warm-up
    started = time.perf_counter()
    out = pipeline(poses, seeds=list(range(count)), sampler="dpm++", steps=steps, guidance=2.0)
    _sync(device)
    seconds = time.perf_counter() - started
    if not torch.isfinite(out.images).all():
        raise RuntimeError("non-finite pixels")
    return {"images": count, "sampler": "dpm++", "steps": steps, "guidance": 2.0,
            "images_per_s": round(count / seconds, 3), "_value": out.vq_latents[:1]}  # fmt: skip


def sample_codes(model_dir: Path, device: str) -> dict:
    from posedraw.pipelines import load_pipeline
    from posedraw.pose import read_pose

    pipeline = load_pipeline(model_dir, device)
    pipeline.set_progress_bar_config(disable=True)
    pose = read_pose(REPO / "examples" / "poses" / "standing.json")
    pipeline([pose], seeds=[0], top_k=100)  # warm-up
    started = time.perf_counter()
    out = pipeline([pose, pose], seeds=[1, 2], top_k=100, guidance=2.0)
    _sync(device)
    seconds = time.perf_counter() - started
    tokens = 2 * out.codes[0].numel()
    return {"images": 2, "guidance": 2.0, "images_per_s": round(2 / seconds, 3),
            "codes_per_s": round(tokens / seconds, 1)}  # fmt: skip


def tune_one(vq_dir: Path, latent: torch.Tensor, clip_model: str, steps: int, device: str) -> dict:
    from posedraw.models.clip import ClipSpec, load_clip
    from posedraw.models.vq import load_vq
    from posedraw.tuning.clip import TuneOptions, similarities, tune
    from posedraw.tuning.prompts import WeightedPrompt, embed_prompts

    vq, clip = load_vq(vq_dir, device), load_clip(ClipSpec(clip_model, pretrained=None), device)
    prompts = [WeightedPrompt(text="colorful")]
    embeddings = embed_prompts(clip, prompts)
    options = TuneOptions(steps=steps, cutouts=8)
    started = time.perf_counter()
    result = tune(vq, clip, latent.to(device), embeddings, torch.tensor([1.0]), options, progress=False)
    _sync(device)
    seconds = time.perf_counter() - started
    score = similarities(clip, result.images, embeddings)
    if not torch.isfinite(score).all():
        raise RuntimeError("non-finite CLIP score")
    return {"clip": f"{clip_model} (untrained)", "steps": steps, "iterations_per_s": round(steps / seconds, 3)}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def gpu_check(device: str, size_name: str, work: Path, save: Saver) -> dict:
    from posedraw.train.ldm import ldm_stage
    from posedraw.train.transformer import transformer_stage
    from posedraw.train.vq import vq_stage

    size = SIZES[size_name]
    steps, overrides = size["steps"], size["overrides"]
    configs = {stage: write_config(stage, size[stage], overrides[stage], work) for stage in QUIET}
    results: dict[str, Any] = {}
    run_check("data", results, device, save, lambda: make_data(size, work, device))
    vq_model = run_check("train_vq", results, device, save, lambda: train_twice(
        lambda out: vq_stage(configs["vq"], work / "toy", out), work / "vq-run", steps, device))  # fmt: skip
    if vq_model is None:
        return results
    run_check("cache_latents", results, device, save, lambda: cache(work, vq_model, "latents", device, True, False))
    code_vq = vq_model if size["code_vq"] == size["vq"] else random_vq(size["code_vq"], work)
    run_check("cache_codes", results, device, save, lambda: cache(work, code_vq, "codes", device, False, True))
    ldm_model = run_check("train_ldm", results, device, save, lambda: train_twice(
        lambda out: ldm_stage(configs["ldm"], work / "latents", vq_model, out), work / "ldm-run", steps,
        device))  # fmt: skip
    code_model = run_check("train_transformer", results, device, save, lambda: train_twice(
        lambda out: transformer_stage(configs["transformer"], work / "codes", code_vq, out), work / "tf-run", steps,
        device))  # fmt: skip
    latent = None
    if ldm_model is not None:
        latent = run_check("draw", results, device, save,
                           lambda: draw(ldm_model, device, size["draw"], size["draw_steps"]))  # fmt: skip
    if code_model is not None:
        run_check("sample_transformer", results, device, save, lambda: sample_codes(code_model, device))
    if latent is not None:
        run_check("tune", results, device, save,
                  lambda: tune_one(vq_model, latent, size["clip"], size["tune_steps"], device))  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="toy sizes (runs on a CPU in about a minute)")
    parser.add_argument("--json", type=Path, help="also write the JSON object to this file")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: no CUDA GPU here (use --device cpu --tiny for the CPU variant)")
    started = time.perf_counter()

    def report(checks: dict) -> dict:
        return {
            "bench": "gpu_check",
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "machine": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__,
            "command": " ".join(["python", "bench/gpu_check.py", *sys.argv[1:]]),
            "size": "tiny" if args.tiny else "full",
            "checks": checks,
            "passed": all(c["pass"] for c in checks.values()) and len(checks) == CHECKS,
            "seconds": round(time.perf_counter() - started, 1),
        }

    def save(checks: dict) -> None:
        if args.json:
            write_json(args.json, report(checks))

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        final = report(gpu_check(args.device, "tiny" if args.tiny else "full", work, save))
    print(json.dumps(final))
    if args.json:
        write_json(args.json, final)
    sys.exit(0 if final["passed"] else 1)


def write_json(path: Path, report: dict) -> None:
    """Write through a temporary file and a rename: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=1) + "\n")
    partial.replace(path)


if __name__ == "__main__":
    main()
