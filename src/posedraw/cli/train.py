"""`posedraw train ...`: training jobs of every stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import (
    CompileOption,
    DeviceOption,
    DevicesOption,
    NodesOption,
    PrecisionOption,
    vq_model,
    writable_dir,
    writable_file,
)

app = typer.Typer(help="Train the models (Lightning: --devices/--num-nodes for DDP, resumable).", no_args_is_help=True)


MaxStepsOption = Annotated[int | None, typer.Option("--max-steps", min=1, help="Override the config's steps.")]
KeepBestOption = Annotated[
    str | None,
    typer.Option("--keep-best", metavar="METRIC", help="Keep checkpoints/best.ckpt by this validation score: pck, "
                 "oks, ap, ar, person_count_error, swap_rate, fd, kd (needs the config's validation: poses)."),
]  # fmt: skip
CacheOnDeviceOption = Annotated[
    str,
    typer.Option("--cache-on-device", metavar="auto|on|off", help="Hold the whole cache in the training device's "
                 "memory and draw the batches there (auto: on a CUDA device when it takes under half its free "
                 "memory). Same batches either way.", show_default=True),
]  # fmt: skip
RestartOption = Annotated[
    bool, typer.Option("--restart/--no-restart", metavar="", help="Ignore an existing last.ckpt in OUT.")
]


def _options(
    out: Path, device: str, devices: int, num_nodes: int, precision: str | None, max_steps: int | None, restart: bool
):
    """The run options every training command shares (resume unless --restart)."""
    from posedraw.train.driver import RunOptions

    return RunOptions(out, device, devices, num_nodes, precision, max_steps, resume=not restart)


@app.command("vq")
def train_vq_command(
    config: Annotated[Path, typer.Option("--config", help="A configs/vq-*.yaml file.")],
    data: Annotated[Path, typer.Option("--data", help="Folder of images (recursive; jpg/png/webp).")],
    out: Annotated[
        Path, typer.Option("--out", callback=writable_dir, help="Run folder: checkpoints, samples, logs, model/.")
    ] = Path("runs/vq"),
    init: Annotated[
        str | None,
        typer.Option("--init", help="Start from this model folder's VQ (fine-tuning; with train.decoder_only)."),
    ] = None,
    max_steps: MaxStepsOption = None,
    restart: RestartOption = False,
    device: DeviceOption = "auto",
    devices: DevicesOption = 1,
    num_nodes: NodesOption = 1,
    precision: PrecisionOption = None,
) -> None:
    """Train a VQGAN first stage; rerun the same command to resume after an interruption.

    Example: posedraw train vq --config configs/vq-toy-f4.yaml --data images/ --out runs/vq-toy
    """
    from posedraw.train.vq import train_vq

    options = _options(out, device, devices, num_nodes, precision, max_steps, restart)
    model_dir = train_vq(config, data, options, init=init)
    if model_dir is not None:  # the other DDP ranks stay quiet
        typer.echo(f"model saved to {model_dir}")


@app.command("ldm")
def train_ldm_command(
    config: Annotated[Path, typer.Option("--config", help="A configs/ldm-*.yaml file.")],
    latents: Annotated[Path, typer.Option("--latents", help="Latent cache (posedraw data cache-latents).")],
    vq: Annotated[Path, typer.Option("--vq", callback=vq_model, help="The VQ model folder the cache was made with.")],
    out: Annotated[
        Path, typer.Option("--out", callback=writable_dir, help="Run folder: checkpoints, samples, logs, model/.")
    ] = Path("runs/ldm"),
    init: Annotated[
        str | None,
        typer.Option("--init", help="Start from this diffusion model's UNet and pose encoder (fine-tuning)."),
    ] = None,
    max_steps: MaxStepsOption = None,
    keep_best: KeepBestOption = None,
    restart: RestartOption = False,
    device: DeviceOption = "auto",
    devices: DevicesOption = 1,
    num_nodes: NodesOption = 1,
    precision: PrecisionOption = None,
    compile: CompileOption = False,
    cache_on_device: CacheOnDeviceOption = "auto",
) -> None:
    """Train a pose-conditioned diffusion model on cached latents; rerun the same command to resume.

    Example: posedraw train ldm --config configs/ldm-toy.yaml --latents data/toy-latents --vq runs/vq-toy/model
    """
    from posedraw.train.ldm import train_ldm

    options = _options(out, device, devices, num_nodes, precision, max_steps, restart)
    model_dir = train_ldm(
        config, latents, vq, options, init=init, keep_best=keep_best, compile=compile, cache_on_device=cache_on_device
    )
    if model_dir is not None:
        typer.echo(f"pipeline saved to {model_dir} (posedraw generate --model {model_dir} ...)")


@app.command("transformer")
def train_transformer_command(
    config: Annotated[Path, typer.Option("--config", help="A configs/transformer-*.yaml file.")],
    codes: Annotated[Path, typer.Option("--codes", help="Code cache (posedraw data cache-latents --codes).")],
    vq: Annotated[Path, typer.Option("--vq", callback=vq_model, help="The VQ model folder the cache was made with.")],
    out: Annotated[
        Path, typer.Option("--out", callback=writable_dir, help="Run folder: checkpoints, logs, model/.")
    ] = Path("runs/transformer"),
    max_steps: MaxStepsOption = None,
    keep_best: KeepBestOption = None,
    restart: RestartOption = False,
    device: DeviceOption = "auto",
    devices: DevicesOption = 1,
    num_nodes: NodesOption = 1,
    precision: PrecisionOption = None,
    cache_on_device: CacheOnDeviceOption = "auto",
) -> None:
    """Train the pose-conditioned code transformer on cached VQ codes; rerun the same command to resume.

    Example: posedraw train transformer --config configs/transformer-toy.yaml --codes data/toy-codes --vq runs/vq/model
    """
    from posedraw.train.transformer import train_transformer

    options = _options(out, device, devices, num_nodes, precision, max_steps, restart)
    model_dir = train_transformer(config, codes, vq, options, keep_best=keep_best, cache_on_device=cache_on_device)
    if model_dir is not None:
        typer.echo(f"model saved to {model_dir} (posedraw generate --model {model_dir} ...)")


@app.command("curves")
def train_curves_command(
    run: Annotated[Path, typer.Argument(help="A run folder (the --out of a training command).")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", callback=writable_file, help="PNG to write (default RUN/curves.png).")
    ] = None,
) -> None:
    """Plot what a run logged (the loss and the validation scores, by step) to one PNG.

    Example: posedraw train curves runs/ldm -o curves.png
    """
    from posedraw.train.curves import plot_curves, read_curves

    curves = read_curves(run)
    path = plot_curves(curves, out or run / "curves.png", title=str(run))
    typer.echo(f"wrote {path} ({len(curves)} metrics)")


@app.command("pose-detector")
def train_pose_detector_command(
    out: Annotated[Path, typer.Option("--out", callback=writable_file, help="Weights file to write (.safetensors).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps on fresh toy renders.")] = 1500,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Train the toy pose detector (heatmap CNN) that judges generated toy figures; prints held-out PCK.
    The detector shipped in the package changes only through scripts/build_toy_judges.sh.

    Example: posedraw train pose-detector --out runs/toy_detector.safetensors --steps 1500
    """
    import torch

    from posedraw.data.images import to_tensor
    from posedraw.data.toy import make_toy_sample
    from posedraw.eval.fidelity import fidelity
    from posedraw.eval.toy_detector import detect_toy_poses, save_detector, train_detector

    model, report = train_detector(steps=steps, seed=seed)
    held_out = [make_toy_sample(900_000_000 + i, 64) for i in range(200)]
    found = detect_toy_poses(model, torch.stack([to_tensor(s.image) for s in held_out]), 64, 64)
    score = fidelity(found, [s.pose for s in held_out])
    save_detector(model, out)
    typer.echo(f"trained {report.steps} steps; held-out PCK@0.1 {score.pck:.4f}; saved {out}")


@app.command("attribute-classifier")
def train_attribute_classifier_command(
    out: Annotated[Path, typer.Option("--out", callback=writable_file, help="Weights file to write (.safetensors).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps (batches of 64 renders).")] = 2000,
    renders: Annotated[
        int, typer.Option("--renders", min=2, help="Scenes (1-3 figures) to train on, drawn once, half through the VQ.")
    ] = 6000,
    vq: Annotated[
        str, typer.Option("--vq", help="Model folder whose VQ half of the renders go through (as generated images).")
    ] = "builtin",
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Train the toy attribute classifier that `posedraw eval attributes` uses; prints held-out accuracy on
    single figures and on the figures of 2- and 3-figure scenes.

    Example: posedraw train attribute-classifier --out runs/toy_attributes.safetensors
    """
    from posedraw.eval.attributes import SCENE_SHARES, held_out_accuracy, save_classifier, train_classifier
    from posedraw.models.vq import load_vq
    from posedraw.pipelines.loading import resolve_model

    first_stage = load_vq(resolve_model(vq))
    model, report = train_classifier(steps=steps, seed=seed, vq=first_stage, count=renders)
    scores = []
    for way, through in (("on renders", None), ("through the VQ", first_stage)):
        by_count = [held_out_accuracy(model, vq=through, people=people).mean for people in SCENE_SHARES]
        scores.append(f"{way} " + ", ".join(f"{a:.4f} ({people})" for people, a in zip(SCENE_SHARES, by_count)))
    save_classifier(model, out)
    typer.echo(f"trained {report.steps} steps; held-out accuracy (figures per scene) {'; '.join(scores)}; saved {out}")
