"""`posedraw vq ...`: use a first stage on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from posedraw.cli.common import DeviceOption, vq_model, writable_dir
from posedraw.progress import tracked

app = typer.Typer(help="Use a VQ first stage on its own.", no_args_is_help=True)


@app.command()
def reconstruct(
    images: Annotated[list[Path], typer.Argument(help="Images to reconstruct.")],
    model: Annotated[
        Path, typer.Option("--model", callback=vq_model, help="Model folder (from convert vq, train vq or a pipeline).")
    ],
    out: Annotated[Path, typer.Option("--out", callback=writable_dir, help="Folder for the reconstructions.")],
    size: Annotated[int | None, typer.Option("--size", min=8, help="Side in pixels (default: the model's).")] = None,
    save_latent: Annotated[
        bool, typer.Option("--save-latent/--no-save-latent", metavar="", help="Write the pre-quantization latent .npy.")
    ] = False,
    save_codes: Annotated[
        bool, typer.Option("--save-codes/--no-save-codes", metavar="", help="Write the code indices .npy.")
    ] = False,
    device: DeviceOption = "auto",
) -> None:
    """Reconstruct images through the VQ and print PSNR (and LPIPS when its VGG16 weights are cached).

    Example: posedraw vq reconstruct photo.png --model models/vq-f16 --out recon/ --save-codes
    """
    from posedraw.devices import resolve_device
    from posedraw.errors import PosedrawError
    from posedraw.models.vq import load_vq
    from posedraw.pipelines.reconstruct import lpips_if_available, reconstruct_images

    vq = load_vq(model, resolve_device(device))
    side = size or int(vq.config.sample_size)
    factor = 2 ** (len(vq.config.block_out_channels) - 1)
    if side % factor:
        raise PosedrawError(f"--size: expected a multiple of the model's downsampling factor {factor}, got {side}")
    metric = lpips_if_available()
    results = []
    for path in tracked(images, "reconstructing"):
        results += reconstruct_images(vq, [path], out, side, save_latent, save_codes, metric)
    table = Table("image", "output", "PSNR dB", "LPIPS")
    for r in results:
        table.add_row(str(r.source), str(r.output), f"{r.psnr:.2f}", "n/a" if r.lpips is None else f"{r.lpips:.4f}")
    console = Console()
    console.print(table)
    mean = sum(r.psnr for r in results) / len(results)
    console.print(
        f"mean PSNR {mean:.2f} dB" + ("" if metric else " (LPIPS: n/a, VGG16 weights not in the torch cache)")
    )
