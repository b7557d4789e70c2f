"""What validation during training costs: the same toy diffusion run with and without validation, alternating.

Builds the toy latent cache of bench/ldm_train.py (64 px figures through the built-in VQ; `--latents`
reuses an existing one), then trains `--config` (default configs/ldm-toy.yaml) for `--steps` steps through
the stage driver, in turn without validation and with it (`validation: poses`, `steps`, `features` as
given, every `--every` steps: far more often than the default, so that a short run validates several
times). It reports the median training step (of the runs without validation), the median validation
(timed around each one), the share validation adds at the default interval (`ValidationConfig.every`) and
at the bench's own, computed from those two, and the median time of the whole training runs.

    python bench/validation_cost.py [--steps 40 --every 10 --rounds 2] [--json bench/results/validation_cost.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml
from common import alternate, machine_load, peak_rss_mb, publish
from ldm_train import StepTimer, toy_cache

from posedraw.builtin import builtin_model
from posedraw.config import read_config
from posedraw.train.driver import RunOptions, run_stage
from posedraw.train.ldm import ldm_stage
from posedraw.train.validation import Validation, ValidationConfig

REPO = Path(__file__).resolve().parents[1]


def config_with(base: Path, folder: Path, validation: dict | None) -> Path:
    """`base` with a `validation:` section (or none), written to `folder`."""
    config = read_config(base)
    config.pop("validation", None)
    if validation is not None:
        config["validation"] = validation
    path = folder / f"config-{'with' if validation else 'without'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def one_run(config: Path, latents: Path, steps: int, out: Path) -> dict:
    """Train `steps` steps; the step gaps, and the seconds of each validation."""
    stage = ldm_stage(config, latents, builtin_model(), out)
    stage = replace(stage, checkpoint_every=10**9)  # the cost of validating, not of writing checkpoints
    validations: list[float] = []
    for callback in stage.callbacks:
        if isinstance(callback, Validation):
            validate = callback.validate

            def timed(*args, validate=validate):
                start = time.perf_counter()
                result = validate(*args)
                validations.append(time.perf_counter() - start)
                return result

            callback.validate = timed  # type: ignore[method-assign]
    timer = StepTimer()
    stage.callbacks.append(timer)
    started = time.perf_counter()
    run_stage(stage, RunOptions(out, "cpu", max_steps=steps, progress=False, resume=False))
    return {"seconds": time.perf_counter() - started, "gaps": [b - a for a, b in zip(timer.ends, timer.ends[1:])],
            "validations": validations}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "src" / "posedraw" / "configs" / "ldm-toy.yaml")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--poses", type=int, default=16)
    parser.add_argument("--sampler-steps", type=int, default=ValidationConfig.steps)
    parser.add_argument("--features", default="toy-detector")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--figures", type=int, default=256)
    parser.add_argument("--latents", type=Path, help="an existing toy latent cache (made with the built-in VQ)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    section = {"poses": args.poses, "every": args.every, "steps": args.sampler_steps, "features": args.features}
    load_before = machine_load()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        latents = args.latents or toy_cache(folder, args.figures)
        configs = {"without": config_with(args.config, folder, None), "with": config_with(args.config, folder, section)}
        runs: dict[str, list[dict]] = {"without": [], "with": []}
        ways = {name: (lambda name=name: runs[name].append(one_run(configs[name], latents, args.steps,
                                                                   folder / f"run-{name}")))
                for name in configs}  # fmt: skip
        alternate(ways, repeats=args.rounds, warmup=0)
    step_s = statistics.median(g for run in runs["without"] for g in run["gaps"][2:])
    validation_s = statistics.median(v for run in runs["with"] for v in run["validations"])
    default_every = ValidationConfig.every
    publish("validation_cost", {
        "config": str(args.config.relative_to(REPO)), "validation": section, "steps_per_run": args.steps,
        "rounds": args.rounds, "note": f"steps reduced to {args.steps} per run and the interval to {args.every} "
        f"(default {default_every}) to keep the bench to minutes on a 2-core CPU; the share at the default "
        "interval is computed from the measured step and validation times",
        "train_step_s": round(step_s, 4), "validation_s": round(validation_s, 3),
        "validations_per_run": len(runs["with"][0]["validations"]),
        "share_at_default_every": round(validation_s / (default_every * step_s), 4), "default_every": default_every,
        "share_at_bench_every": round(validation_s / (args.every * step_s), 4),
        "training_run_s_median": {name: round(statistics.median(r["seconds"] for r in done), 2)
                                  for name, done in runs.items()},
        "machine_load": [load_before, machine_load()], "peak_rss_mb": round(peak_rss_mb(), 1),
    }, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
