"""Code-transformer sampling speed: what the KV cache buys, measured like for like.

Draws one 16 x 16 grid of codes per pose three ways, alternating, after a warm-up of each:
- `cached`: our step with the KV cache (the prefix and earlier codes are never recomputed);
- `ours_uncached`: the same forward (`CodeGPT`) over the whole sequence for every token: differs from
  `cached` only in the cache, so `kv_cache_speedup` = ours_uncached / cached is the cache's effect;
- `transformers_uncached`: transformers' GPT-2 forward over the whole sequence for every token (what
  sampling without our forward costs); `own_step_speedup` = transformers_uncached / ours_uncached. This
  way exists only here (`TransformersForward`), the library's sampler has no use for it.
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
from posedraw.models.transformer import (
    CodeSampler,
    RecomputingDecoder,
    TransformerConfig,
    build_transformer,
    pose_encoder_for,
)
from posedraw.pipelines import load_pipeline

REPO = Path(__file__).resolve().parents[1]
WAYS = ("cached", "ours_uncached", "transformers_uncached")


class TransformersForward(CodeSampler):
    """The sampler with transformers' GPT-2 forward over the whole sequence for every code, the LM head on
    the last position only (what `logits_to_keep=1` does in recent transformers)."""

    def decoder(self, use_cache: bool, pose_maps: torch.Tensor | None) -> RecomputingDecoder:
        def forward(ids: torch.Tensor, added: torch.Tensor | None) -> torch.Tensor:
            embeds = self.model.transformer.wte(ids)
            embeds = embeds if added is None else embeds + added.to(embeds.dtype)
            hidden = self.model.transformer(inputs_embeds=embeds, use_cache=False).last_hidden_state
            return self.model.lm_head(hidden[:, -1:])[..., : self.num_codes]

        return RecomputingDecoder(forward, pose_maps, self.encoder.prefix_length)


def samplers_of(name: str) -> dict[str, CodeSampler]:
    """The sampler of each way, on the same weights."""
    if name == "builtin":
        pipeline = load_pipeline("builtin:transformer")
        model, encoder = pipeline.transformer, pipeline.pose_encoder
    else:
        data = yaml.safe_load((REPO / "src" / "posedraw" / "configs" / f"{name}.yaml").read_text())["model"]
        data.update(num_codes=data["num_codes"] or 256, grid=data["grid"] or 16)  # the toy cache's values
        config = from_dict(TransformerConfig, data)
        torch.manual_seed(0)
        model, encoder = build_transformer(config), pose_encoder_for(config, null_pose=True)
    ours = CodeSampler(model, encoder)
    return {"cached": ours, "ours_uncached": ours, "transformers_uncached": TransformersForward(model, encoder)}


def measure(name: str, batch: int, repeats: int) -> dict:
    samplers = samplers_of(name)
    sampler = samplers["cached"]
    poses = [sample_pose(np.random.default_rng(10**9 + i), 64).label for i in range(batch)]
    seeds = list(range(batch))
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    codes: dict[str, torch.Tensor] = {}
    for round_ in range(repeats + 1):  # round 0 warms every way up
        for way in WAYS:
            start = time.perf_counter()
            codes[way], _ = samplers[way](poses, seeds, use_cache=way == "cached")
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
