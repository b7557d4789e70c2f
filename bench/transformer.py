"""Benchmark code-transformer sampling: tokens per second with and without the KV cache.

Draws one 16 x 16 grid (256 codes after the 17-token pose prefix) per pose, with random weights, for each
model size asked for, first with the KV cache (the prefix and earlier codes are never recomputed) and
then recomputing the whole sequence for every token (transformers' forward, last position's logits
only), and checks both drew the same codes. This machine's timings wander by 20% from run to run, so
each way runs `--repeats` times, alternating, after one cached warm-up, and the medians are compared.
Prints one JSON object (the last line of stdout); `kv_cache_speedup` is the ratio for the first size.

    python bench/transformer.py [--configs transformer-toy transformer-f16] [--batch 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import yaml

from posedraw.config import from_dict
from posedraw.data.poses import sample_pose
from posedraw.models.transformer import CodeSampler, TransformerConfig, build_transformer, pose_encoder_for

REPO = Path(__file__).resolve().parents[1]


def model_config(name: str) -> TransformerConfig:
    data = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())["model"]
    data.update(num_codes=data["num_codes"] or 256, grid=data["grid"] or 16)  # the toy cache's values
    return from_dict(TransformerConfig, data)


def timed(sampler: CodeSampler, poses, use_cache: bool) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    codes, _ = sampler(poses, list(range(len(poses))), use_cache=use_cache)
    return time.perf_counter() - start, codes


def measure(name: str, batch: int, repeats: int) -> dict:
    import numpy as np

    config = model_config(name)
    torch.manual_seed(0)
    sampler = CodeSampler(build_transformer(config), pose_encoder_for(config, null_pose=True))
    poses = [sample_pose(np.random.default_rng(i), 64).label for i in range(batch)]
    timed(sampler, poses, True)  # warm-up
    cached_runs, uncached_runs = [], []
    for _ in range(repeats):
        cached_runs.append(timed(sampler, poses, True))
        uncached_runs.append(timed(sampler, poses, False))
    cached_s = statistics.median(t for t, _ in cached_runs)
    uncached_s = statistics.median(t for t, _ in uncached_runs)
    first = cached_runs[0][1]
    tokens = batch * config.grid**2
    return {
        "config": name,
        "parameters_m": round(sum(p.numel() for p in sampler.model.parameters()) / 1e6, 1),
        "sequence": config.num_positions,
        "batch": batch,
        "repeats": repeats,
        "cached_tokens_per_s": round(tokens / cached_s, 1),
        "uncached_tokens_per_s": round(tokens / uncached_s, 1),
        "speedup": round(uncached_s / cached_s, 1),
        "same_codes": all(torch.equal(codes, first) for _, codes in cached_runs + uncached_runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["transformer-toy"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each way; medians are compared")
    args = parser.parse_args()
    results = []
    for name in args.configs:
        results.append(measure(name, args.batch, args.repeats))
        print(json.dumps(results[-1]), flush=True)
    print(
        json.dumps(
            {
                "benchmark": "transformer_sampling",
                "date": time.strftime("%Y-%m-%d"),
                "cpu_threads": torch.get_num_threads(),
                "machine": platform.machine(),
                "torch": torch.__version__,
                "kv_cache_speedup": results[0]["speedup"],
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
