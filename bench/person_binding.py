"""Which way of binding a per-person prompt to its person works? Tiny models trained the same way on the
binding world (tests/binding_world.py: two or three figures drawn as red or blue skeletons, each figure's
colour its own prompt), differing only in the binding: the prompt vector on the person's joint tokens
and painted on its body (`tokens+maps`, the default), on the tokens only, on the maps only, and no
binding at all (the colours as one bag prompt, the baseline). Each is trained from 2 seeds and scored on
held-out scenes drawn with alternating colours and with those colours swapped.

    python bench/person_binding.py [--steps 200] [--seeds 2] [--json bench/results/person_binding.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from common import publish

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.binding_world import binding_score, train_binding_model

VARIANTS = {
    "tokens+maps": {},
    "tokens only": {"person_channels": 0},
    "maps only": {"person_tokens": False},
    "bag prompt (no binding)": {"person_prompts": False},
}


def measure(pose: dict, people: int, steps: int, seeds: int) -> dict:
    """Scores summed over the training seeds, and the share of drawings with every figure right."""
    total: dict[str, int] = {}
    started = time.perf_counter()
    for seed in range(seeds):
        pipe = train_binding_model(pose, people=people, steps=steps, seed=seed)
        for name, value in binding_score(pipe, people=people).items():
            total[name] = total.get(name, 0) + value
    return {**total, "drawings_right_share": round(total["drawings_right"] / total["drawings"], 4),
            "figures_right_share": round(total["figures_right"] / total["figures"], 4),
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {}
    for people in (2, 3):
        for name, pose in VARIANTS.items():
            rows[f"{people} figures, {name}"] = measure(pose, people, args.steps, args.seeds)
            print(f"{people} figures, {name}: {rows[f'{people} figures, {name}']}", file=sys.stderr, flush=True)
    publish("person_binding", {"steps": args.steps, "training_seeds": args.seeds, "torch_threads":
            torch.get_num_threads(), "held_out_scenes": 8, "results": rows}, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
