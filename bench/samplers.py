"""Benchmark sampling: network-evaluation cost and how close each sampler gets to a 1000-step DDIM result.

Prints one JSON object (the last line of stdout):
- `nfe`: per network evaluation, our pipeline's time per sampling step vs a plain UNet forward of the same
  weights and inputs (the pipeline's overhead), for the converted fixture and for the original system's
  UNet size (`ldm-kp-f4`: 160 channels, mult 1,2,3,4, attention at 8,4,2, 64x64x3 latents; random weights).
- `distance`: for a model available locally (default: the converted reference fixture), each sampler's
  relative RMS distance of the final latent from 1000-step DDIM started from the same noise, at 5/10/20/50
  steps, averaged over poses and seeds.

    python bench/samplers.py [--model DIR] [--seeds 4] [--skip-large]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


def fixture_pipeline(folder: Path):
    from posedraw.compat.ldm import convert_ldm_checkpoint

    return convert_ldm_checkpoint(folder / "model.ckpt", folder / "config.yaml")


def large_pipeline(fixture_folder: Path):
    """The original system's UNet size with random weights (the fixture's first stage)."""
    from diffusers import UNet2DConditionModel

    from posedraw.compat.ldm import unet_config_from_original
    from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline

    small = fixture_pipeline(fixture_folder)
    original = yaml.safe_load((fixture_folder / "config.yaml").read_text())
    large = copy.deepcopy(original)
    unet = large["model"]["params"]["unet_config"]["params"]
    unet.update(image_size=64, model_channels=160, channel_mult=[1, 2, 3, 4], attention_resolutions=[8, 4, 2],
                num_res_blocks=2, num_head_channels=32, transformer_depth=1)  # fmt: skip
    unet.pop("num_heads", None)
    torch.manual_seed(0)
    model = UNet2DConditionModel(**unet_config_from_original(large)).eval()
    return KeypointLDMPipeline(unet=model, vq=small.vq, scheduler=small.scheduler, pose_encoder=small.pose_encoder)


def per_evaluation(pipeline, pose, steps: int = 5, repeats: int = 2) -> dict:
    """Seconds per sampling step through the pipeline vs per plain UNet forward (batch 1, DDIM)."""
    pipeline.set_progress_bar_config(disable=True)
    shape = pipeline.latent_shape
    x = torch.randn(1, *shape)
    context = pipeline.pose_encoder(**pipeline.pose_encoder.prepare([pose])).context
    t = torch.tensor([500])
    with torch.no_grad():
        pipeline.unet(x, t, encoder_hidden_states=context)
        plain = []
        for _ in range(repeats * steps):
            start = time.perf_counter()
            pipeline.unet(x, t, encoder_hidden_states=context)
            plain.append(time.perf_counter() - start)
    decode_start = time.perf_counter()
    pipeline.decode_latents(x)
    decode = time.perf_counter() - decode_start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipeline([pose], seeds=[0], sampler="ddim", steps=steps)
        runs.append((time.perf_counter() - start - decode) / steps)
    step, forward = statistics.median(runs), statistics.median(plain)
    return {
        "latent": list(shape),
        "unet_parameters_m": round(sum(p.numel() for p in pipeline.unet.parameters()) / 1e6, 2),
        "pipeline_step_s": round(step, 4),
        "plain_unet_forward_s": round(forward, 4),
        "overhead_ratio": round(step / forward, 3),
    }


def distances(pipeline, poses, seeds: int) -> dict:
    from posedraw.pipelines.samplers import SAMPLERS

    pipeline.set_progress_bar_config(disable=True)
    shape = pipeline.latent_shape
    table: dict[str, dict[str, float]] = {name: {} for name in SAMPLERS}
    from diffusers import DDIMScheduler

    # every train step, 999 .. 0 (the original grid's offset of 1 would step past the last train step)
    reference_ddim = DDIMScheduler.from_config(pipeline.scheduler.config, steps_offset=0, timestep_spacing="leading")
    starts = [torch.randn(1, *shape, generator=torch.Generator().manual_seed(s)) for s in range(seeds)]
    for pose in poses:
        for start in starts:
            reference = pipeline([pose], latents=start, sampler=reference_ddim, steps=1000).latents
            for name in SAMPLERS:
                for steps in (5, 10, 20, 50):
                    latent = pipeline([pose], latents=start, sampler=name, steps=steps, eta=0.0).latents
                    rel = float((latent - reference).pow(2).mean().sqrt() / reference.pow(2).mean().sqrt())
                    table[name].setdefault(str(steps), 0.0)
                    table[name][str(steps)] += rel / (len(poses) * seeds)
    return {name: {k: round(v, 4) for k, v in row.items()} for name, row in table.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="pipeline folder for the distance table (default: the fixture)")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
    from posedraw.pose import read_pose

    fixture = args.fixtures / "ldm_kp_f4_tiny"
    poses = [read_pose(p) for p in sorted((args.fixtures / "lxj616_keypoints").glob("*.json"))]
    small = fixture_pipeline(fixture)
    with tempfile.TemporaryDirectory() as tmp:  # measure the pipeline as users load it
        small.save_pretrained(tmp)
        small = KeypointLDMPipeline.from_pretrained(tmp)
    result = {"benchmark": "samplers", "date": time.strftime("%Y-%m-%d"),
              "machine": {"cpu_count": __import__("os").cpu_count(), "machine": platform.machine(),
                          "torch_threads": torch.get_num_threads()},
              "nfe": {"fixture": per_evaluation(small, poses[0])}}  # fmt: skip
    if not args.skip_large:
        result["nfe"]["ldm-kp-f4"] = per_evaluation(large_pipeline(fixture), poses[0], steps=3, repeats=1)
    model = KeypointLDMPipeline.from_pretrained(args.model) if args.model else small
    result["distance_model"] = str(args.model or "converted fixture ldm_kp_f4_tiny (random weights)")
    result["distance_vs_ddim1000"] = distances(model, poses, args.seeds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
