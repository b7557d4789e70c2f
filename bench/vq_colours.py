"""Which colours survive a first stage? The toy figures' hair and outfit colours through a VQ, encoded and decoded.

Every figure is drawn once per hair colour (and, apart, once per outfit colour) with everything else the
same; the pixels whose colour changes between those drawings are the hair (or the outfit). Through the VQ,
each drawing's mean colour over those pixels is compared with the palette: `nearest_palette` is the share
whose mean lies closer to its own colour than to any other, `mean_error` the mean distance (0-255 RGB) to
its own colour. Rows: the renders themselves (the check: 1.0; the outfit's error is not 0 because
trousers are a darker shade of it), decoded as the pipelines decode
(latents quantized to the codebook first) and decoded without quantizing (do the continuous latents hold
more than the codes?). A diffusion model's drawing is decoded by this VQ, so a colour it loses is lost to
every prompt.

    python bench/vq_colours.py [--model builtin] [--figures 40] [--json bench/results/vq_colours.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import publish

from posedraw.data.images import to_tensor
from posedraw.data.poses import sample_pose
from posedraw.data.toy import HAIR, OUTFIT, random_appearance, render_figure
from posedraw.models.vq import decode, encode, load_vq
from posedraw.pipelines.loading import resolve_model

PALETTES = {"hair": HAIR, "outfit_colour": OUTFIT}


def drawings(seed: int, attribute: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One figure drawn in every colour of the attribute's palette (C, 3, 64, 64), and the (64, 64) mask
    of the pixels whose colour changes with it."""
    rng = np.random.default_rng(seed)
    sampled, look = sample_pose(rng, 64), random_appearance(rng)
    images = torch.stack(
        [
            to_tensor(render_figure(sampled.full, sampled.head_size, replace(look, **{attribute: name}), 64))
            for name in PALETTES[attribute]
        ]
    )
    return images, (images - images[:1]).abs().sum(1).amax(0) > 0.05


ROWS = ("renders", "through the VQ", "through the VQ, not quantized")


def versions(vq, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The renders as drawn, decoded as the pipelines decode (quantized) and decoded unquantized: one encoding."""
    latents = encode(vq, images)
    unquantized = vq.decode(latents, force_not_quantize=True).sample
    return dict(zip(ROWS, (images, decode(vq, latents), unquantized), strict=True))


@torch.no_grad()
def measure(vq, attribute: str, figures: int) -> dict:
    palette = np.array(list(PALETTES[attribute].values()), dtype=np.float64)
    rows = {name: {"hits": 0, "errors": []} for name in ROWS}
    for i in range(figures):
        images, mask = drawings(5_000_000 + i, attribute)
        if not mask.any():
            continue  # the part is outside the picture
        for name, decoded in versions(vq, images).items():
            pixels = (decoded.clamp(-1, 1)[:, :, mask].mean(-1) + 1) * 127.5  # (C, 3) mean RGB
            distances = np.linalg.norm(pixels.numpy()[:, None, :] - palette[None], axis=-1)
            rows[name]["hits"] += int((distances.argmin(1) == np.arange(len(palette))).sum())
            rows[name]["errors"] += distances.diagonal().tolist()
    counted = len(rows["renders"]["errors"])
    summary = {"drawings": counted}
    for name, row in rows.items():
        summary[name] = {
            "nearest_palette": round(row["hits"] / counted, 4),
            "mean_error": round(float(np.mean(row["errors"])), 1),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin", help="a model folder with a VQ (or a VQ folder)")
    parser.add_argument("--figures", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    vq = load_vq(resolve_model(args.model))
    results = {attribute: measure(vq, attribute, args.figures) for attribute in PALETTES}
    print(json.dumps(results), file=sys.stderr)
    publish("vq_colours", {"model": args.model, "figures": args.figures, "results": results}, args.json)


if __name__ == "__main__":
    main()
