"""Callbacks of the VQGAN stage (the driver's own, for every stage, live in train/driver.py)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from posedraw.data.images import to_image
from posedraw.io import save_image_atomic


class ReconstructionGrid(Callback):
    """Every `every` steps, write originals (top row) over reconstructions (bottom row) as a PNG."""

    def __init__(self, images: torch.Tensor, folder: Path, every: int) -> None:
        self.images, self.folder, self.every = images, folder, every

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        step = int(module.step)  # type: ignore[attr-defined]
        if trainer.is_global_zero and step % self.every == 0:
            self.write(module, step)

    @torch.no_grad()
    def write(self, module: L.LightningModule, step: int) -> Path:
        was_training = module.training
        module.eval()
        recon = module.vq(self.images.to(module.device)).sample.float().cpu()  # type: ignore[attr-defined]
        module.train(was_training)
        path = self.folder / f"recon_{step:07d}.png"
        save_image_atomic(image_grid([list(self.images), list(recon)]), path)
        return path


def image_grid(rows: list[list[torch.Tensor]]) -> Image.Image:
    """Tensors in [-1, 1] laid out row by row."""
    tiles = [[to_image(t) for t in row] for row in rows]
    width, height = tiles[0][0].size
    grid = Image.new("RGB", (width * max(len(r) for r in tiles), height * len(tiles)))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            grid.paste(tile, (c * width, r * height))
    return grid
