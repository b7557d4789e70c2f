"""`posedraw convert ...`: import original checkpoints into posedraw model folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posedraw.cli.common import TrustOption, writable_dir

app = typer.Typer(help="Import original checkpoints (taming-transformers, latent-diffusion).", no_args_is_help=True)


@app.command("vq")
def convert_vq_command(
    checkpoint: Annotated[Path, typer.Argument(help="model.ckpt of a taming VQGAN or a latent-diffusion model.")],
    config: Annotated[Path, typer.Option("--config", help="The checkpoint's original config.yaml.")],
    out: Annotated[Path, typer.Option("--out", callback=writable_dir, help="Model folder to write.")],
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


@app.command("ldm")
def convert_ldm_command(
    checkpoint: Annotated[Path, typer.Argument(help="model.ckpt of an original keypoint latent-diffusion model.")],
    config: Annotated[Path, typer.Option("--config", help="The checkpoint's original config.yaml.")],
    out: Annotated[Path, typer.Option("--out", callback=writable_dir, help="Pipeline folder to write.")],
    no_ema: Annotated[
        bool, typer.Option("--no-ema", metavar="", help="Use the live weights instead of the EMA weights.")
    ] = False,
    trust_checkpoint: TrustOption = False,
) -> None:
    """Convert an original keypoint LDM checkpoint (UNet + first stage + schedule) into a pipeline folder.

    Example: posedraw convert ldm kp/model.ckpt --config kp/config.yaml --out models/keypoints-danbooru
    """
    from posedraw.compat.ldm import convert_ldm_checkpoint
    from posedraw.io import atomic_dir

    pipeline = convert_ldm_checkpoint(checkpoint, config, use_ema=not no_ema, trust_checkpoint=trust_checkpoint)
    with atomic_dir(out) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
    unet = sum(p.numel() for p in pipeline.unet.parameters()) / 1e6
    typer.echo(
        f"wrote {out}: UNet {unet:.1f}M parameters ({'live' if no_ema else 'EMA'} weights), "
        f"latent {tuple(pipeline.latent_shape)}, scale_factor {pipeline.vq.config.scaling_factor:g}"
    )
