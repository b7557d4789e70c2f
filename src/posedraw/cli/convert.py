"""`posedraw convert ...`: import original checkpoints into posedraw model folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import TrustOption

app = typer.Typer(help="Import original checkpoints (taming-transformers, latent-diffusion).", no_args_is_help=True)


@app.command("vq")
def convert_vq_command(
    checkpoint: Annotated[Path, typer.Argument(help="model.ckpt of a taming VQGAN or a latent-diffusion model.")],
    config: Annotated[Path, typer.Option("--config", help="The checkpoint's original config.yaml.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    trust_checkpoint: TrustOption = False,
) -> None:
    """Convert a VQGAN (standalone, or the first stage of an LDM checkpoint) into a model folder.

    Example: posedraw convert vq last.ckpt --config model.yaml --out models/vq-f16-imagenet
    """
    from posedraw.compat.vq import convert_vq_checkpoint
    from posedraw.models.vq import save_vq

    vq = convert_vq_checkpoint(checkpoint, config, trust_checkpoint)
    save_vq(vq, out, {"source": str(checkpoint), "config": str(config)})
    factor = 2 ** (len(vq.config.block_out_channels) - 1)
    typer.echo(
        f"wrote {out}: f{factor}, {vq.config.num_vq_embeddings} codes of {vq.config.vq_embed_dim} dims, "
        f"{sum(p.numel() for p in vq.parameters()) / 1e6:.1f}M parameters"
    )
