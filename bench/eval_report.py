"""The field's protocol (`posedraw eval report`) on the built-in models over held-out poses and scenes.

Held-out single poses with a prompt naming four attributes drawn at random (pose-sampler seeds from 10**9,
as bench/generators.py and bench/text_conditioning.py make them) and held-out scenes of 2 and 3 figures
without a prompt (toy-scene seeds from 10**9, as bench/scenes.py makes them). The diffusion model draws
them all at pose guidance 1, 2 and 4 (DPM-Solver++, 20 steps); the code transformer, which draws one
person without text, the single poses. Every drawing is written as `posedraw generate` writes it (a PNG
with its recipe) and the report reads them back: COCO OKS AP/AR (pycocotools) and the person count error
of the people the toy detector re-detects, PCK@0.1, OKS, left/right swaps, toy attribute accuracy, per
run, pose kind and number of people. The real images are the toy renders of exactly the asked-for poses
(and, for single figures, the prompted attributes). No Inception weights are on this machine and it is
offline, so the image distances use the shipped toy pose detector's features: FD_toy-detector and
KD_toy-detector, not FID/KID, and comparable only with each other; no CLIP weights either, so no CLIP
score. Writes the JSON object to `--json` (and, with `--out DIR`, the report's own files) and prints it.

    python bench/eval_report.py [--poses 32] [--scenes 8] [--json bench/results/eval_report.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import publish
from generators import held_out_poses
from scenes import HELD_OUT, held_out_scenes
from text_conditioning import held_out

from posedraw.data.images import to_image
from posedraw.data.toy import make_toy_sample, make_toy_scene
from posedraw.eval.image_quality import TOY_DETECTOR, image_features, load_extractor
from posedraw.eval.report import Reference, build_report, read_reference, write_report
from posedraw.pipelines import load_pipeline
from posedraw.pipelines.outputs import Job, Outputs, run_jobs, write_job

#: the columns kept in the tables of docs/benchmarks.md (report.json holds them all)
COLUMNS = ("drawings", "people", "ap", "ap50", "ar", "pck@0.1", "oks", "left_right_swap_rate",
           "person_count_error", "attribute_accuracy", "FD_toy-detector", "KD_toy-detector")  # fmt: skip


def held_out_jobs(poses: int, scenes: int) -> tuple[list[Job], list[str], list, list[Job]]:
    """Single-pose jobs named by their kind, their prompts and real images; scene jobs with their images."""
    singles, prompts, renders = held_out(poses)
    assert all(a.allclose(b) for a, b in zip(singles, held_out_poses(poses)))  # the generators bench's poses
    kinds = [make_toy_sample(HELD_OUT + i, 64).kind for i in range(poses)]  # the sampler's first draw: same pose
    single_jobs = [Job(pose, f"{kind}_{i:03d}", i) for i, (pose, kind) in enumerate(zip(singles, kinds))]
    real = [to_image(image) for image in renders]
    scene_jobs = []
    for people in (2, 3):
        for i, pose in enumerate(held_out_scenes(people, scenes, 64)):
            scene_jobs.append(Job(pose, f"scene_{people}_figures_{i:03d}", i))
            real.append(make_toy_scene(HELD_OUT + i, 64, people).image)
    return single_jobs, prompts, real, scene_jobs


def draw_prompted(pipeline, jobs: list[Job], prompts: list[str], options: dict, folder: Path, batch: int = 16) -> None:
    """Each job with its own prompt, in batches; each PNG's recipe holds its prompt, as generate writes it."""
    for start in range(0, len(jobs), batch):
        chunk, texts = jobs[start : start + batch], prompts[start : start + batch]
        result = pipeline([j.pose for j in chunk], seeds=[j.seed for j in chunk], prompt=texts, **options)
        for i, (job, text) in enumerate(zip(chunk, texts)):
            write_job(job, i, result, pipeline.resolved_options({**options, "prompt": text}), "builtin", folder,
                      Outputs())  # fmt: skip


def draw(root: Path, singles: list[Job], prompts: list[str], scenes: list[Job], guidance: list[float]) -> list[Path]:
    """The drawings of every setting, one folder each; returns the folders."""
    folders = []
    diffusion = load_pipeline("builtin")
    diffusion.set_progress_bar_config(disable=True)
    for scale in guidance:
        folder = root / f"diffusion-guidance-{scale:g}"
        folder.mkdir()
        options = {"steps": 20, "guidance": scale}
        draw_prompted(diffusion, singles, prompts, options, folder)
        run_jobs(diffusion, scenes, options, "builtin", folder, Outputs(), batch_size=16)
        folders.append(folder)
        print(f"drew {folder.name}", file=sys.stderr, flush=True)
    transformer = load_pipeline("builtin:transformer")
    transformer.set_progress_bar_config(disable=True)
    folder = root / "transformer"
    run_jobs(transformer, singles, {"guidance": 1.0}, "builtin:transformer", folder, Outputs(), batch_size=16)
    return [*folders, folder]


def compact(metrics: dict) -> dict:
    return {name: metrics[name] for name in COLUMNS if name in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=32, help="held-out single poses")
    parser.add_argument("--scenes", type=int, default=8, help="held-out scenes of each size (2 and 3 figures)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one: others share the machine)")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--out", type=Path, help="also keep the report's report.json and report.html here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    singles, prompts, real, scenes = held_out_jobs(args.poses, args.scenes)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "real").mkdir()
        for i, image in enumerate(real):
            image.save(root / "real" / f"real_{i:03d}.png")
        folders = draw(root, singles, prompts, scenes, args.guidance)
        drawn = time.perf_counter()
        extractor = load_extractor(TOY_DETECTOR)
        reference = Reference(root / "real", image_features(extractor, read_reference(root / "real")), extractor)
        report = build_report(folders, "toy", reference)
        if args.out is not None:
            write_report(report, args.out)
    runs = report.data["runs"]
    publish(
        "eval_report",
        {
            "held_out_single_poses": args.poses,
            "held_out_scenes_per_size": args.scenes,
            "diffusion": "built-in, DPM-Solver++ 20 steps, prompts on single poses only",
            "transformer": "built-in, temperature 1, single poses only (it draws one person, no text)",
            "detector": "toy (one crop per asked-for person: counts missing people, not extra ones)",
            "reference": f"{len(real)} toy renders of the asked-for figures",
            "image_distances": "toy-detector features (no Inception weights offline): not FID/KID",
            "clip_score": "not measured (no CLIP weights offline)",
            "note": "a diffusion run pools single figures and scenes, the transformer's holds single figures only: "
            "compare them by per_people (1 people)",
            "seconds_drawing": round(drawn - started, 1),
            "seconds_report": round(time.perf_counter() - drawn, 1),
            "results": {label: compact(run["metrics"]) for label, run in runs.items()},
            "per_kind": {
                f"{label} / {kind}": compact(m) for label, run in runs.items() for kind, m in run["per_kind"].items()
            },
            "per_people": {
                f"{label} / {people} people": compact(m)
                for label, run in runs.items()
                for people, m in run["per_people"].items()
            },
        },
        args.json,
    )


if __name__ == "__main__":
    main()
