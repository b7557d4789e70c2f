"""Training a VQGAN first stage: one LightningModule, two optimizers, one autoencoder pass per step.

The original ran the autoencoder twice per step (once per optimizer). Here the generator step computes
the reconstruction once, and the discriminator step reuses it detached; the result is the same update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image
from torch.utils.data import DataLoader

from posedraw.config import dump_yaml, load_config, to_dict
from posedraw.data.augment import Augmentation
from posedraw.data.images import ImageFolder, to_image
from posedraw.data.loader import PoseImageDataset
from posedraw.io import save_image_atomic, write_text_atomic
from posedraw.losses.vqgan import VQGANLoss, VQLossConfig
from posedraw.models.vq import VQConfig, build_vq, save_vq
from posedraw.train.trainer import RunOptions, make_trainer, resume_path


@dataclass(frozen=True)
class VQTrainConfig:
    batch_size: int = 8
    learning_rate: float = 3.6e-5
    betas: tuple[float, ...] = (0.5, 0.9)
    max_steps: int = 100_000
    sample_every: int = 1000
    checkpoint_every: int = 1000
    num_workers: int = 2
    seed: int = 0


@dataclass(frozen=True)
class VQRunConfig:
    """A `configs/vq-*.yaml` file: the network, its loss and how to train it."""

    model: VQConfig = field(default_factory=VQConfig)
    loss: VQLossConfig = field(default_factory=VQLossConfig)
    train: VQTrainConfig = field(default_factory=VQTrainConfig)


class VQGANModule(L.LightningModule):
    def __init__(self, config: VQRunConfig) -> None:
        super().__init__()
        self.config = config
        self.vq = build_vq(config.model)
        self.loss = VQGANLoss(config.loss, config.model.in_channels)
        self.automatic_optimization = False
        # steps of the generator; Lightning's global_step counts every optimizer's steps
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr, betas = self.config.train.learning_rate, tuple(self.config.train.betas)
        fused = {"fused": True} if torch.cuda.is_available() else {}
        generator = torch.optim.Adam(self.vq.parameters(), lr=lr, betas=betas, **fused)  # type: ignore[arg-type]
        discriminator = torch.optim.Adam(self.loss.discriminator.parameters(), lr=lr, betas=betas, **fused)  # type: ignore[arg-type]
        return [generator, discriminator]

    def training_step(self, images: torch.Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        step = int(self.step)
        out = self.vq(images)
        last_layer = self.vq.decoder.conv_out.weight
        g_loss, logs = self.loss.generator_loss(images, out.sample, out.commit_loss, step, last_layer)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        if self.loss.disc_active(step):
            d_loss, d_logs = self.loss.discriminator_loss(images, out.sample)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            logs.update(d_logs)
        self.step += 1
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=False)
        self.log("rec", logs["rec_loss"], prog_bar=True)


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


def train_vq(config_path: Path, data: Path, options: RunOptions) -> Path | None:
    """Train (or resume) a VQGAN; returns the exported model folder `<out>/model` (None on other DDP ranks)."""
    config = load_config(VQRunConfig, config_path)
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    options.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(options.out / "config.yaml", dump_yaml(config))
    loader, fixed = _images(data, config, options.out)
    grid = ReconstructionGrid(fixed, options.out / "samples", config.train.sample_every)
    trainer = make_trainer(
        options, config.train.max_steps, config.train.checkpoint_every, [grid], unused_parameters=True
    )
    module = VQGANModule(config)
    trainer.fit(module, loader, ckpt_path=resume_path(options))
    if not trainer.is_global_zero:
        return None
    model_dir = options.out / "model"
    save_vq(module.vq, model_dir, {"config": to_dict(config), "steps": int(module.step)})
    grid.write(module, int(module.step))
    return model_dir


class _ImagesOnly(torch.utils.data.IterableDataset):
    """The images of a posedraw dataset (shards), augmented, for first-stage training."""

    def __init__(self, dataset: PoseImageDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def __iter__(self):
        epoch = 0
        while True:  # endless: the step count ends training
            self.dataset.epoch = epoch
            for sample in self.dataset:
                yield sample["image"]
            epoch += 1


def _images(data: Path, config: VQRunConfig, out: Path) -> tuple[DataLoader, torch.Tensor]:
    """A loader over an image folder or a posedraw dataset, and 8 fixed images for reconstruction grids."""
    size, train = config.model.resolution, config.train
    if (data / "dataset.json").is_file():
        plain = PoseImageDataset(data, size, augmentation=None, rank=0, ranks=1, shuffle_buffer=1)
        fixed = torch.stack([s["image"] for _, s in zip(range(8), plain)])
        augmented = PoseImageDataset(data, size, augmentation=Augmentation(min_scale=0.85), seed=train.seed)
        loader = DataLoader(_ImagesOnly(augmented), batch_size=train.batch_size, num_workers=train.num_workers)
        return loader, fixed
    dataset = ImageFolder(data, size, augment=True)
    _report_skipped(dataset, out)
    loader = DataLoader(
        dataset,
        batch_size=min(train.batch_size, len(dataset)),
        shuffle=True,
        drop_last=True,
        num_workers=train.num_workers,
        persistent_workers=train.num_workers > 0,
    )
    return loader, torch.stack([dataset.load(i, augment=False) for i in range(min(8, len(dataset)))])


def _report_skipped(dataset: ImageFolder, out: Path) -> None:
    if dataset.skipped:
        write_text_atomic(out / "skipped_images.txt", "".join(f"{p}\n" for p in dataset.skipped))
        print(f"skipped {len(dataset.skipped)} unreadable images (listed in {out / 'skipped_images.txt'})")
