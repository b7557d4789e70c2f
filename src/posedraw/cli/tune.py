"""`posedraw tune`: restyle a drawing with CLIP while keeping its pose (and the options generate shares)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import DeviceOption, writable_dir

ClipOption = Annotated[
    str, typer.Option("--clip", help="open_clip model name (ViT-B-32, ViT-L-14, ...; posedraw-tiny-clip for tests).")
]
ClipPretrainedOption = Annotated[
    str, typer.Option("--clip-pretrained", help="open_clip weights tag (openai, laion2b_s34b_b79k, ...).")
]
ClipWeightsOption = Annotated[
    Path | None, typer.Option("--clip-weights", help="Local CLIP checkpoint file (wins over --clip-pretrained).")
]


def clip_spec(clip: str, pretrained: str, weights: Path | None):
    from posedraw.models.clip import TINY, ClipSpec

    return ClipSpec(clip, None if clip == TINY else pretrained, None if weights is None else str(weights))


def tune(
    source: Annotated[Path, typer.Argument(help="A .latent.npy from generate --save-latent, a code .npy or an image.")],
    out: Annotated[
        Path, typer.Option("--out", callback=writable_dir, help="Folder for <name>_tuned.png, its latent and strip.")
    ],
    prompt: Annotated[list[str] | None, typer.Option("--prompt", help="'text' or 'text:weight'; repeatable.")] = None,
    image_prompt: Annotated[
        list[str] | None, typer.Option("--image-prompt", help="Image file, optionally ':weight'; repeatable.")
    ] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Model folder with the VQ (default: built-in).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimization steps.")] = 100,
    lr: Annotated[float, typer.Option("--lr", min=1e-6, help="Adam learning rate on the latent.")] = 0.1,
    cutouts: Annotated[int, typer.Option("--cutouts", min=1, help="Augmented CLIP views per step.")] = 32,
    keep_pose: Annotated[float, typer.Option("--keep-pose", min=0.0, help="Weight of the structure term.")] = 10.0,
    structure: Annotated[str, typer.Option("--structure", help="lowpass, edges, lpips or none.")] = "lowpass",
    anchor: Annotated[float, typer.Option("--anchor", min=0.0, help="Start weight of MSE to the first latent.")] = 1.0,
    every: Annotated[int | None, typer.Option("--every", min=1, help="Also write every K-th step as a strip.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the cutouts.")] = 0,
    clip: ClipOption = "ViT-B-32",
    clip_pretrained: ClipPretrainedOption = "openai",
    clip_weights: ClipWeightsOption = None,
    device: DeviceOption = "auto",
) -> None:
    """Optimize a drawing's VQ latent so that CLIP matches the prompts; a structure term keeps the pose.

    Example: posedraw tune out/pose_seed0.latent.npy --model models/kp-f16 --prompt colorful --out tuned/
    """
    from posedraw.devices import resolve_device
    from posedraw.errors import PosedrawError
    from posedraw.models.vq import load_vq
    from posedraw.tuning.clip import TuneOptions
    from posedraw.tuning.files import load_tune_input, source_metadata, stem_of
    from posedraw.tuning.prompts import parse_prompt
    from posedraw.tuning.run import TuneRequest, tune_and_write

    prompts = [parse_prompt(p) for p in prompt or []] + [parse_prompt(p, image=True) for p in image_prompt or []]
    options = TuneOptions(steps, lr, cutouts, seed, anchor, keep_pose, structure, every)
    request = TuneRequest(prompts, options, clip_spec(clip, clip_pretrained, clip_weights))
    options.check()
    if not prompts:
        raise PosedrawError("no prompts: give --prompt TEXT (repeatable) or --image-prompt FILE")
    if model is None:
        from posedraw.builtin import builtin_model

        model = builtin_model()
    vq = load_vq(model, resolve_device(device))
    latent = load_tune_input(source, vq)
    [tuned] = tune_and_write(vq, latent, request, [stem_of(source)], [source_metadata(source)], out)
    print_similarities(request, tuned)


def print_similarities(request, tuned) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("prompt", "weight", "CLIP before", "CLIP after", title=str(tuned.path))
    for p, b, a in zip(request.prompts, tuned.before, tuned.after):
        table.add_row(p.label, f"{p.weight:g}", f"{b:.4f}", f"{a:.4f}")
    Console().print(table)
