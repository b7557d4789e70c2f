"""Training a VQGAN first stage: one LightningModule, two optimizers, one autoencoder pass per step.

The original ran the autoencoder twice per step (once per optimizer). Here the generator step computes
the reconstruction once, and the discriminator step reuses it detached; the result is the same update.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from posedraw.config import load_config, to_dict
from posedraw.data.augment import Augmentation
from posedraw.data.images import FolderImage, ImageFolder, to_image
from posedraw.data.loader import ImagePoseSample, dataset_source
from posedraw.data.stream import ImageFiles, SampleStream
from posedraw.devices import optimizer_options
from posedraw.errors import ConfigError
from posedraw.io import save_image_atomic, write_text_atomic
from posedraw.losses.vqgan import VQGANLoss, VQLossConfig
from posedraw.models.vq import VQConfig, build_vq, load_vq, save_vq, vq_folder
from posedraw.pipelines.loading import resolve_model
from posedraw.train.driver import RunOptions, Stage, run_stage


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
    # train the decoder alone (encoder, quant_conv and codebook frozen): the latents and codes of diffusion
    # models and transformers trained on this VQ stay valid, and their drawings decode better (with --init)
    decoder_only: bool = False


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
        if config.train.decoder_only:
            for part in (self.vq.encoder, self.vq.quant_conv, self.vq.quantize):
                part.requires_grad_(False)
        self.automatic_optimization = False
        # steps of the generator; Lightning's global_step counts every optimizer's steps
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr, betas = self.config.train.learning_rate, tuple(self.config.train.betas)
        fused = optimizer_options(self.device)
        trained = [p for p in self.vq.parameters() if p.requires_grad]
        generator = torch.optim.Adam(trained, lr=lr, betas=betas, **fused)
        discriminator = torch.optim.Adam(self.loss.discriminator.parameters(), lr=lr, betas=betas, **fused)
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


def vq_stage(config_path: Path, data: Path, out: Path, init: str | Path | None = None) -> Stage:
    """The VQGAN stage: images from a posedraw dataset (augmented with their poses) or an image folder;
    with `init`, starting from that model folder's VQ (its network must match the config's)."""
    config = load_config(VQRunConfig, config_path)
    train = config.train
    if train.decoder_only and init is None:
        raise ConfigError(f"{config_path}: train.decoder_only fine-tunes a trained VQ: give it with --init")
    if init is not None:  # a wrong --init fails before the data are read
        vq_folder(resolve_model(str(init)))
    stream, fixed = _images(data, config, out)
    torch.manual_seed(train.seed)
    module = VQGANModule(config)
    if init is not None:
        start_vq_from(module.vq, init)
    grid = ReconstructionGrid(fixed, out / "samples", train.sample_every)

    def export(module: VQGANModule, steps: int) -> Path:
        model_dir = out / "model"
        save_vq(module.vq, model_dir, {"config": to_dict(config), "steps": steps})
        grid.write(module, steps)
        return model_dir

    return Stage(
        name="vq", config=config, module=module, stream=stream, collate=torch.stack, batch_size=train.batch_size,
        num_workers=train.num_workers, max_steps=train.max_steps, checkpoint_every=train.checkpoint_every,
        seed=train.seed, export=export, callbacks=[grid], unused_parameters=True,
    )  # fmt: skip


def train_vq(config_path: Path, data: Path, options: RunOptions, init: str | Path | None = None) -> Path | None:
    """Train (or resume) a VQGAN; returns the exported model folder `<out>/model` (None on other DDP ranks)."""
    return run_stage(vq_stage(config_path, data, options.out, init), options)


def start_vq_from(vq: torch.nn.Module, init: str | Path) -> None:
    """Copy the weights of the VQ in model folder `init` (a VQ or pipeline folder, or "builtin") into `vq`;
    refuses a VQ of another shape in one line."""
    weights = load_vq(resolve_model(str(init))).state_dict()
    mine = vq.state_dict()
    wrong = [k for k in mine if k not in weights or weights[k].shape != mine[k].shape]
    if wrong or len(weights) != len(mine):
        raise ConfigError(f"--init {init}: its VQ is not the config's network (first difference: "
                          f"{(wrong or sorted(set(weights) - set(mine)))[0]})")  # fmt: skip
    vq.load_state_dict(weights)


def _images(data: Path, config: VQRunConfig, out: Path) -> tuple[SampleStream, torch.Tensor]:
    """The training images of a posedraw dataset or an image folder, and 8 fixed ones for the grids."""
    size, seed = config.model.resolution, config.train.seed
    if (data / "dataset.json").is_file():
        source = dataset_source(data)
        plain = SampleStream(source, ImagePoseSample(size), epochs=1, shuffle_buffer=1)
        fixed = torch.stack([s["image"] for _, s in zip(range(8), plain)])
        return SampleStream(source, _ImageOnly(ImagePoseSample(size, Augmentation(min_scale=0.85))), seed=seed), fixed
    folder = ImageFolder(data, size)
    _report_skipped(folder, out)
    fixed = torch.stack([folder[i] for i in range(min(8, len(folder)))])
    return SampleStream(ImageFiles(folder.files), FolderImage(size), seed=seed), fixed


@dataclass(frozen=True)
class _ImageOnly:
    """The image of a dataset sample: first-stage training ignores the pose (but augments with it)."""

    decode: ImagePoseSample

    def __call__(self, raw: dict, rng: random.Random) -> torch.Tensor:
        return self.decode(raw, rng)["image"]


def _report_skipped(dataset: ImageFolder, out: Path) -> None:
    if dataset.skipped:
        write_text_atomic(out / "skipped_images.txt", "".join(f"{p}\n" for p in dataset.skipped))
        print(f"skipped {len(dataset.skipped)} unreadable images (listed in {out / 'skipped_images.txt'})")
