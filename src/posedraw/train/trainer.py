"""Trainer wiring shared by every stage: devices, precision, checkpoints, resume, progress.

The research code lives in the LightningModules; everything about where and how it runs is here, so
`--devices 8 --num-nodes 4 --precision bf16-mixed` works for every stage the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar, TQDMProgressBar

from posedraw.errors import ConfigError


@dataclass(frozen=True)
class RunOptions:
    """How to run a training job (from the CLI); what to train is the stage's config."""

    out: Path
    device: str = "auto"  # auto | cpu | cuda
    devices: int = 1
    num_nodes: int = 1
    precision: str | None = None  # default: bf16-mixed on CUDA with bf16 support, else 32-true
    max_steps: int | None = None
    resume: bool = True
    progress: bool = True


class PoseBatchTransfer:
    """LightningModule mixin for batches that mix tensors and Pose objects: tensors go to the device,
    poses stay as they are (Lightning's default transfer would try to move them)."""

    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is present, else 'cpu'; anything else is checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device: expected auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is available on this machine")
    return device


def default_precision(device: str) -> str:
    if device == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def checkpoint_dir(out: Path) -> Path:
    return out / "checkpoints"


def last_checkpoint(out: Path) -> Path | None:
    path = checkpoint_dir(out) / "last.ckpt"
    return path if path.is_file() else None


def training_step_of(trainer: L.Trainer, module: L.LightningModule) -> int:
    """Completed training steps: the module's own `step` counter if it keeps one (modules with several
    optimizers do, since Lightning counts every optimizer's step), else Lightning's global step."""
    step = getattr(module, "step", None)
    return int(step) if step is not None else int(trainer.global_step)


class StepCheckpoints(Callback):
    """Write `last.ckpt` every `every` training steps, at the end, and when interrupted; stop at `max_steps`.

    The file is written to a temporary name and renamed, so a kill during the write never leaves a corrupt
    checkpoint, and a resumed run loses at most the steps since the last write (none after Ctrl-C).
    """

    def __init__(self, out: Path, every: int, max_steps: int) -> None:
        self.out, self.every, self.max_steps = out, every, max_steps

    def save(self, trainer: L.Trainer) -> None:
        path = checkpoint_dir(self.out) / "last.ckpt"
        tmp = path.with_name(".last.ckpt.tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            tmp.replace(path)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if training_step_of(trainer, module) >= self.max_steps:  # resumed a run that already finished
            trainer.should_stop = True

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        step = training_step_of(trainer, module)
        if step >= self.max_steps:
            trainer.should_stop = True
        if step % self.every == 0 or trainer.should_stop:
            self.save(trainer)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and training_step_of(trainer, module) > 0:
            self.save(trainer)


def make_trainer(
    options: RunOptions,
    max_steps: int,
    checkpoint_every: int,
    callbacks: list[Callback],
    unused_parameters: bool = False,
) -> L.Trainer:
    """A Trainer for `options`. `unused_parameters`: some backward passes leave parameters without gradient
    (a GAN's generator and discriminator steps), which DDP must be told about."""
    device = resolve_device(options.device)
    distributed = options.devices * options.num_nodes > 1
    strategy = ("ddp_find_unused_parameters_true" if unused_parameters else "ddp") if distributed else "auto"
    _quiet_lightning()
    progress: list[Callback] = []
    if options.progress:
        progress = [RichProgressBar()] if _rich_ok() else [TQDMProgressBar()]
    steps = options.max_steps or max_steps
    return L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=options.devices,
        num_nodes=options.num_nodes,
        strategy=strategy,
        precision=options.precision or default_precision(device),  # type: ignore[arg-type]
        max_steps=-1,  # StepCheckpoints stops at the module's own step count
        max_epochs=-1,
        default_root_dir=options.out,
        callbacks=[StepCheckpoints(options.out, checkpoint_every, steps), *progress, *callbacks],
        enable_progress_bar=options.progress,
        enable_checkpointing=False,
        logger=L.pytorch.loggers.CSVLogger(options.out, name="logs"),  # a new version_N per (resumed) run
        log_every_n_steps=10,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def _quiet_lightning() -> None:
    """Lightning's start-up banners (GPU available, tips) are noise for a CLI user."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # resuming mid-epoch reshuffles the data; for random-crop training that is what we want
    warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")


def _rich_ok() -> bool:
    import sys

    return sys.stderr.isatty()


def resume_path(options: RunOptions) -> str | None:
    """The checkpoint to continue from: out/checkpoints/last.ckpt when resuming and it exists."""
    last = last_checkpoint(options.out)
    return str(last) if options.resume and last is not None else None
