"""Code-transformer sampling speed: what the KV cache buys, measured like for like.

Draws one 16 x 16 grid of codes per pose three ways, alternating, after a warm-up of each:
- `cached`: our step with the KV cache (the prefix and earlier codes are never recomputed);
- `ours_uncached`: the same step run over the whole sequence for every token with a fresh cache: differs
  from `cached` only in the cache, so `kv_cache_speedup` = ours_uncached / cached is the cache's effect;
- `transformers_uncached`: transformers' GPT-2 forward over the whole sequence for every token (what
  sampling without our step costs); `own_step_speedup` = transformers_uncached / ours_uncached.
All three must draw the same codes. Medians of `--repeats` alternating runs. The built-in transformer by
default; `--configs` adds configs with random weights (bigger models).

    python bench/transformer.py [--configs transformer-f16] [--repeats 3] [--json bench/results/transformer.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from common import publish

from posedraw.config import from_dict
from posedraw.data.poses import sample_pose
from posedraw.models.transformer import CodeSampler, TransformerConfig, build_transformer, pose_encoder_for
from posedraw.pipelines import load_pipeline

REPO = Path(__file__).resolve().parents[1]
WAYS = {"cached": {"use_cache": True}, "ours_uncached": {"use_cache": False, "recompute": "ours"},
        "transformers_uncached": {"use_cache": False, "recompute": "transformers"}}  # fmt: skip


def sampler_of(name: str) -> CodeSampler:
    if name == "builtin":
        pipeline = load_pipeline("builtin:transformer")
        return CodeSampler(pipeline.transformer, pipeline.pose_encoder)
    data = yaml.safe_load((REPO / "src" / "posedraw" / "configs" / f"{name}.yaml").read_text())["model"]
    data.update(num_codes=data["num_codes"] or 256, grid=data["grid"] or 16)  # the toy cache's values
    config = from_dict(TransformerConfig, data)
    torch.manual_seed(0)
    return CodeSampler(build_transformer(config), pose_encoder_for(config, null_pose=True))


def measure(name: str, batch: int, repeats: int) -> dict:
    sampler = sampler_of(name)
    poses = [sample_pose(np.random.default_rng(10**9 + i), 64).label for i in range(batch)]
    seeds = list(range(batch))
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    codes: dict[str, torch.Tensor] = {}
    for round_ in range(repeats + 1):  # round 0 warms every way up
        for way, options in WAYS.items():
            start = time.perf_counter()
            codes[way], _ = sampler(poses, seeds, **options)
            if round_:
                times[way].append(time.perf_counter() - start)
    median = {way: statistics.median(t) for way, t in times.items()}
    tokens = batch * sampler.codes
    return {
        "model": name,
        "parameters_m": round(sum(p.numel() for p in sampler.model.parameters()) / 1e6, 2),
        "codes": sampler.codes,
        "batch": batch,
        **{f"{way}_tokens_per_s": round(tokens / s, 1) for way, s in median.items()},
        "kv_cache_speedup": round(median["ours_uncached"] / median["cached"], 2),
        "own_step_speedup": round(median["transformers_uncached"] / median["ours_uncached"], 2),
        "same_codes": all(torch.equal(c, codes["cached"]) for c in codes.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=[], help="configs with random weights, besides builtin")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {name: measure(name, args.batch, args.repeats) for name in ["builtin", *args.configs]}
    publish("transformer", {"repeats": args.repeats, "results": rows}, args.json)


if __name__ == "__main__":
    main()
