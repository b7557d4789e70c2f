"""Benchmark CLIP tuning: iterations per second, and how well each structure term keeps the pose.

- `speed`: tuning iterations per second at 16 cutouts for a toy f4 VQ (the built-in model's, 64 px) and a
  toy f16 VQ (configs/vq-toy-f16.yaml, random weights: the cost does not depend on them), with the tiny
  CLIP and with ViT-B-32 (random weights, the same compute as the released ones; no download).
- `structure_terms`: per structure term (none / lowpass / edges, `--keep-pose` 10) and for the anchor
  alone, with the tiny CLIP pulling towards "colorful" (untrained, so its pull is an arbitrary push):
  how much of the pose survives (the toy pose detector's PCK@0.1 against the figures' poses) next to how
  far CLIP moved (`clip_gain`, the gain in CLIP similarity to the prompt; the frozen, untuned image
  scores 0). LPIPS needs VGG16 weights that cannot be downloaded here, so it is not measured.

    python bench/tune.py [--steps 10] [--figures 16] [--json bench/results/tune.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import publish

from posedraw.builtin import builtin_model
from posedraw.config import load_config
from posedraw.data.images import to_tensor
from posedraw.data.toy import make_toy_sample
from posedraw.eval.fidelity import detect, fidelity, in_image_frame
from posedraw.models.clip import TINY, ClipSpec, load_clip
from posedraw.models.vq import build_vq, encode, load_vq
from posedraw.train.vq import VQRunConfig
from posedraw.tuning import TuneOptions, embed_prompts, parse_prompt, tune
from posedraw.tuning.clip import similarities

REPO = Path(__file__).resolve().parents[1]


def iterations_per_second(vq, clip, size: int, steps: int) -> float:
    latents = encode(vq, torch.zeros(1, 3, size, size)).detach()
    prompt = embed_prompts(clip, [parse_prompt("colorful")])
    options = TuneOptions(steps=1, cutouts=16)
    tune(vq, clip, latents, prompt, torch.ones(1), options)  # warm-up
    start = time.perf_counter()
    tune(vq, clip, latents, prompt, torch.ones(1), TuneOptions(steps=steps, cutouts=16))
    return round(steps / (time.perf_counter() - start), 2)


def pose_kept(vq, clip, figures: int, steps: int) -> dict[str, dict[str, float]]:
    """Per structure term: pose kept (PCK@0.1 of the toy detector on the tuned figures) next to how far CLIP
    moved (the mean gain in CLIP similarity to the prompt over the untuned reconstruction): an image
    left frozen scores 0 movement, so a term that keeps the pose only by freezing the image shows it."""
    samples = [make_toy_sample(10**9 + i, 64) for i in range(figures)]
    images = torch.stack([to_tensor(s.image) for s in samples])
    targets = [in_image_frame(s.pose, 64, 64) for s in samples]
    with torch.no_grad():
        latents = encode(vq, images)
        untuned = vq.decode(latents).sample.clamp(-1, 1)
    prompt = embed_prompts(clip, [parse_prompt("colorful")])
    before = similarities(clip, untuned, prompt)[:, 0]
    runs = {
        "untuned reconstruction (frozen)": None,
        "none": TuneOptions(steps=steps, lr=0.2, cutouts=8, anchor=0.0, keep_pose=0.0),
        "anchor only": TuneOptions(steps=steps, lr=0.2, cutouts=8, anchor=1.0, keep_pose=0.0),
        "lowpass": TuneOptions(steps=steps, lr=0.2, cutouts=8, anchor=0.0, keep_pose=10.0, structure="lowpass"),
        "edges": TuneOptions(steps=steps, lr=0.2, cutouts=8, anchor=0.0, keep_pose=10.0, structure="edges"),
    }
    result = {}
    for name, options in runs.items():
        tuned = untuned if options is None else tune(vq, clip, latents, prompt, torch.ones(1), options).images
        gain = float((similarities(clip, tuned, prompt)[:, 0] - before).mean())
        result[name] = {"pck@0.1": round(fidelity(detect(tuned, "toy"), targets).pck, 4), "clip_gain": round(gain, 4)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="Timed iterations per configuration.")
    parser.add_argument("--figures", type=int, default=16)
    parser.add_argument("--pose-steps", type=int, default=40, help="Tuning steps for the pose measurement.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    f4 = load_vq(builtin_model())
    torch.manual_seed(0)
    f16 = build_vq(load_config(VQRunConfig, REPO / "configs" / "vq-toy-f16.yaml").model).eval()
    clips = {"tiny": load_clip(ClipSpec(TINY, None)), "ViT-B-32": load_clip(ClipSpec("ViT-B-32", None))}
    speed = {}
    for clip_name, clip in clips.items():
        for vq_name, vq, size in (("toy-f4", f4, 64), ("toy-f16", f16, 64)):
            speed[f"{vq_name}/{clip_name}"] = iterations_per_second(vq, clip, size, args.steps)
            print(json.dumps({f"{vq_name}/{clip_name}": speed[f"{vq_name}/{clip_name}"]}), flush=True)
    kept = pose_kept(f4, clips["tiny"], args.figures, args.pose_steps)
    publish("tune", {"cutouts": 16, "iterations_per_s": speed, "pose_steps": args.pose_steps,
                     "figures": args.figures, "prompt": "colorful", "structure_terms": kept}, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
