"""The stage driver: how every training stage runs, whatever it trains.

A stage (`vq`, `ldm`, `transformer`) supplies a `Stage`: its LightningModule, its LightningDataModule, its
callbacks and how to export the trained model. The driver does the rest the same way for all of them:
device and precision, DDP across `--devices` x `--num-nodes`, the data order across ranks, seeding,
checkpoints, resuming, Ctrl-C / SIGTERM, progress, and export on rank 0.

Guarantees (each one is tested):
- a resumed run reaches the weights of an uninterrupted one: the checkpoint holds weights, EMA, optimizer
  and schedule; the stream restarts at the next unread batch; every step draws its randomness from a
  generator seeded by (seed, rank, step), so it does not matter where the process started;
- `last.ckpt` is written to a temporary file beside it and renamed (never through $TMPDIR, which may be
  small), at every `checkpoint_every` steps, at the end and on Ctrl-C / SIGTERM (which stop every rank after
  the same step); a second Ctrl-C stops at once; a failed write leaves the previous checkpoint and no
  partial file, and says which file it could not write;
- a rank that fails ends the run: Lightning's observer kills the others when a child rank dies, rank 0
  kills its children when it fails, and a child dies with its parent.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from posedraw.config import dump_yaml, to_dict
from posedraw.devices import default_precision, pin_memory, resolve_device
from posedraw.errors import CheckpointError, ConfigError, TrainingInterrupted
from posedraw.io import remove_stale_temps, torch_save_atomic, write_text_atomic
from posedraw.progress import duration
from posedraw.train.datamodule import StreamData
from posedraw.train.ranks import die_with_parent, is_first_process, stop_children

#: config keys a resumed run may change (how long and how often, not what is trained); validation may change
#: but for `validation.poses`, which takes samples out of training
RESUMABLE_KEYS = {"train.max_steps", "train.sample_every", "train.checkpoint_every", "train.num_workers",
                  "train.sample_steps", "validation.every", "validation.steps", "validation.detector",
                  "validation.features", "validation.reference", "validation.keep_best", "validation.seed",
                  "validation.pose_dir"}  # fmt: skip


@dataclass(frozen=True)
class RunOptions:
    """How to run a training job (from the CLI); what to train is the stage's config."""

    out: Path
    device: str = "auto"  # auto | cpu | cuda
    devices: int = 1
    num_nodes: int = 1
    precision: str | None = None  # default: by device (posedraw.devices.default_precision)
    max_steps: int | None = None
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse a precision Lightning would refuse, before any data is read."""
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ConfigError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")


#: Lightning's precision names (and their short aliases) that posedraw's training runs with
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "bf16", "16", "64")


@dataclass
class Stage:
    """What a training stage supplies; see the module docstring."""

    name: str
    config: Any  # the stage's config dataclass (saved as config.yaml, checked on resume)
    module: L.LightningModule
    data: StreamData  # the training batches (train/datamodule.py)
    max_steps: int
    checkpoint_every: int
    seed: int
    export: Callable[[L.LightningModule, int], Path]  # (module, steps) -> model folder; rank 0 only
    callbacks: list[Callback] = field(default_factory=list)
    unused_parameters: bool = False  # a GAN's two backward passes leave parameters without gradient

    @property
    def batch_size(self) -> int:
        return self.data.batch_size


class PoseBatchTransfer:
    """LightningModule mixin for batches that mix tensors and Pose objects: tensors go to the device,
    poses stay as they are (Lightning's default transfer would try to move them)."""

    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def checkpoint_path(out: Path) -> Path:
    return out / "checkpoints" / "last.ckpt"


class BesideCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing beside the checkpoint instead of in memory and then $TMPDIR
    (Lightning's own way): a small $TMPDIR cannot fail a run whose run folder has room, a full disk names the
    checkpoint, and a failed write leaves no partial file (posedraw.io.torch_save_atomic)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            super().save_checkpoint(checkpoint, path, storage_options)  # refuses them, saying why
            return
        torch_save_atomic(checkpoint, path)


def remove_unfinished_checkpoints(out: Path) -> None:
    """Delete the temporary checkpoint files of a run that was killed while saving (SIGKILL, power loss):
    only the names the checkpoint writer uses, so that each killed run does not leave a checkpoint-sized
    file. `.last.ckpt.tmp` is the name earlier versions wrote through."""
    folder = checkpoint_path(out).parent
    remove_stale_temps(folder, [checkpoint_path(out).name, "best.ckpt"])
    (folder / ".last.ckpt.tmp").unlink(missing_ok=True)


def training_step_of(trainer: L.Trainer, module: L.LightningModule) -> int:
    """Completed training steps: the module's own `step` counter if it keeps one (modules with several
    optimizers do, since Lightning counts every optimizer's step), else Lightning's global step."""
    step = getattr(module, "step", None)
    return int(step) if step is not None else int(trainer.global_step)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of one training step on one rank: ranks draw different noise, and a resumed step draws
    what it would have drawn without the interruption."""
    digest = hashlib.blake2b(f"{seed}/{rank}/{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


# --- resuming -------------------------------------------------------------------------------------------


def read_run_record(path: Path) -> dict[str, Any]:
    """The stage, config and step a checkpoint was written with (memory-mapped: the weights are not read)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # a damaged or foreign file: torch raises many kinds
        raise CheckpointError(
            f"{path}: not a readable training checkpoint ({exc.__class__.__name__}); pass --restart to start the run "
            "over (or use another --out)"
        ) from None
    record = checkpoint.get("posedraw") if isinstance(checkpoint, dict) else None
    if not isinstance(record, dict):
        raise CheckpointError(
            f"{path}: written by an older posedraw or another program (no run record); use --restart or another --out"
        )
    return record


def config_changes(old: Any, new: Any, where: str = "") -> Iterator[str]:
    """Dotted keys whose values differ between two config dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from config_changes(old.get(key), new.get(key), f"{where}.{key}" if where else key)
    elif old != new:
        yield where


def check_resumable(record: dict[str, Any], stage: Stage, out: Path) -> None:
    """A run folder is resumed only by the same stage with the same config (save for RESUMABLE_KEYS)."""
    if record.get("stage") != stage.name:
        raise ConfigError(
            f"{out}: holds a {record.get('stage')} training run; train {stage.name} needs another --out "
            "(or --restart to overwrite it)"
        )
    config = to_dict(stage.config)
    old = {**_section_defaults(stage.config), **(record.get("config") or {})}
    changed = [k for k in config_changes(old, config) if k not in RESUMABLE_KEYS]
    if changed:
        key = changed[0]
        raise ConfigError(
            f"{out}: the run was started with another config ({key}: {_lookup(old, key)!r}, now "
            f"{_lookup(config, key)!r}); use the same config, another --out, or --restart"
        )


def _section_defaults(config: Any) -> dict[str, Any]:
    """Every section of `config`'s type at its defaults: a run started before a section existed (say
    `validation:`) ran as those defaults, so resuming it with them is no change."""
    import dataclasses

    return {f.name: to_dict(f.default_factory()) for f in dataclasses.fields(config)
            if f.default_factory is not dataclasses.MISSING}  # fmt: skip


def _lookup(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


# --- the callbacks of every run -------------------------------------------------------------------------


class RunControl(Callback):
    """Seeding per step, stopping (max steps, signals), checkpoints and the run record of one run."""

    def __init__(self, stage: Stage, out: Path, max_steps: int, start: int, say: Callable[[str], None]) -> None:
        self.stage, self.out, self.max_steps, self.start, self.say = stage, out, max_steps, start, say
        self.signum: int | None = None  # set by the handler in this process
        self.stopped_by: int | None = None  # agreed by every rank
        self.step = self.saved_step = start
        self.rank_digests: list[str] = []
        self._previous: dict[int, Any] = {}

    # signals: the first one asks every rank to stop after the current step, a second one stops at once
    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        self.say(f"{signal.Signals(signum).name}: saving after this step (once more to stop at once)")

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """Install the handlers around `trainer.fit` (Lightning's own SIGTERM handling is replaced: it
        broadcasts from inside the handler and stops ranks at different steps)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):  # Lightning registered its SIGTERM handler in fit()
            if signal.getsignal(signum) is not self._handle and self._previous:
                signal.signal(signum, self._handle)
        self.step = training_step_of(trainer, module)
        if self.step >= self.max_steps:
            trainer.should_stop = True

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        torch.manual_seed(step_seed(self.stage.seed, trainer.global_rank, training_step_of(trainer, module)))

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self.step = training_step_of(trainer, module)
        signum = self._agreed_signal(trainer)
        if signum:
            self.stopped_by = signum
            trainer.should_stop = True
        if self.step >= self.max_steps:
            trainer.should_stop = True
        if self.step % self.stage.checkpoint_every == 0 or trainer.should_stop:
            self.save(trainer)

    def _agreed_signal(self, trainer: L.Trainer) -> int:
        """The signal any rank received (the same answer on every rank, so all stop after the same step)."""
        if trainer.world_size == 1:
            return self.signum or 0
        local = torch.tensor([self.signum or 0], device=trainer.strategy.root_device)
        torch.distributed.all_reduce(local, op=torch.distributed.ReduceOp.MAX)
        return int(local.item())

    def save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(checkpoint_path(self.out))  # every rank takes part; rank 0 writes (atomically)
        self.saved_step = self.step

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict) -> None:
        step = training_step_of(trainer, module)
        checkpoint["posedraw"] = {"stage": self.stage.name, "config": to_dict(self.stage.config), "step": step}

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Every rank's weight digest, so the run record shows that DDP kept the ranks identical."""
        digest = weights_digest(module)
        if trainer.world_size > 1:
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, digest)
            self.rank_digests = [str(d) for d in gathered]
        else:
            self.rank_digests = [digest]


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every tensor of the module's state (parameters, EMA, buffers), bit for bit."""
    hasher = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        hasher.update(name.encode())
        hasher.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


class StepProgress(Callback):
    """Progress on rank 0: a bar with the step total and time left on a terminal, else a line every 10 %."""

    def __init__(self, max_steps: int, start: int, say: Callable[[str], None]) -> None:
        self.max_steps, self.start, self.say = max_steps, start, say
        self.every = max(1, max_steps // 10)
        self.bar: Any = None
        self.began = self.shown = 0.0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self.start >= self.max_steps:
            return
        self.began = time.monotonic()
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[loss]}"), transient=True,
            )  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.max_steps, completed=self.start, loss="")

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if not trainer.is_global_zero:
            return
        step = training_step_of(trainer, module)
        now = time.monotonic()
        due = step % self.every == 0 or step == self.max_steps
        if (self.bar is None and not due) or (self.bar is not None and now - self.shown < 0.5 and not due):
            return  # reading the loss waits for the GPU: twice a second is enough for a bar
        self.shown = now
        metrics = trainer.callback_metrics  # device tensors: read only here, when a line is shown
        loss = metrics.get("loss", metrics.get("rec"))
        shown = "" if loss is None else f"loss {float(loss):.4f}"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=shown)
        else:
            rate = (step - self.start) / max(time.monotonic() - self.began, 1e-9)
            left = (self.max_steps - step) / rate if rate > 0 else float("inf")
            self.say(f"step {step}/{self.max_steps} ({100 * step // self.max_steps}%) {shown}, "
                     f"{rate:.2f} steps/s, {duration(left)} left")  # fmt: skip

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# --- the run --------------------------------------------------------------------------------------------


def make_trainer(options: RunOptions, device: str, callbacks: list[Callback], unused_parameters: bool) -> L.Trainer:
    """A Trainer that runs for ever: RunControl stops it at the module's own step count."""
    distributed = options.devices * options.num_nodes > 1
    strategy = ("ddp_find_unused_parameters_true" if unused_parameters else "ddp") if distributed else "auto"
    _quiet_lightning()
    try:
        return L.Trainer(
            accelerator="gpu" if device == "cuda" else "cpu",
            devices=options.devices,
            num_nodes=options.num_nodes,
            strategy=strategy,
            precision=options.precision or default_precision(device),  # type: ignore[arg-type]
            max_steps=-1,
            max_epochs=-1,
            default_root_dir=options.out,
            callbacks=callbacks,
            plugins=[BesideCheckpointIO()],
            enable_progress_bar=False,  # StepProgress shows steps of the run, not batches of an endless epoch
            enable_checkpointing=False,
            logger=run_loggers(options.out),
            log_every_n_steps=10,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,  # the sample streams split the data themselves
        )
    except (ValueError, TypeError) as exc:  # Lightning's checks of devices, precision, strategy
        raise ConfigError(f"training options: {exc}".splitlines()[0]) from None
    except Exception as exc:
        if exc.__class__.__name__ == "MisconfigurationException":
            raise ConfigError(f"training options: {exc}".splitlines()[0]) from None
        raise


def run_loggers(out: Path) -> list[Any]:
    """CSV always (`logs/version_N/metrics.csv`, a new version per (resumed) run: what `train curves`
    reads); TensorBoard (`tensorboard/version_N`) only when tensorboard or tensorboardX is installed."""
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = [CSVLogger(out, name="logs")]
    if any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX")):
        loggers.append(TensorBoardLogger(out, name="tensorboard", default_hp_metric=False))
    return loggers


def run_stage(stage: Stage, options: RunOptions) -> Path | None:
    """Train (or resume) `stage`; returns the exported model folder on rank 0, None on the other ranks.

    Raises TrainingInterrupted (on every rank) when a signal stopped the run after saving.
    """
    die_with_parent()
    device = resolve_device(options.device)
    max_steps = options.max_steps or stage.max_steps
    start = _resume_point(stage, options)
    say = _say if is_first_process() else (lambda message: None)
    if start and start < max_steps:
        say(f"resuming from step {start} of {max_steps} ({checkpoint_path(options.out)})")
    elif start:
        say(f"{options.out} is at step {start} (max steps {max_steps}): nothing to train, exporting its model")
    control = RunControl(stage, options.out, max_steps, start, say)
    progress = [StepProgress(max_steps, start, say)] if options.progress else []
    # the stage's callbacks first: a validation at a checkpoint's step is in that checkpoint
    trainer = make_trainer(options, device, [*stage.callbacks, control, *progress], stage.unused_parameters)
    options.out.mkdir(parents=True, exist_ok=True)  # only once the options are known to be good
    if is_first_process():  # the rank that writes checkpoints; nothing saves before every rank has started
        remove_unfinished_checkpoints(options.out)
    write_text_atomic(options.out / "config.yaml", dump_yaml(stage.config))
    stage.data.resume(start, pin_memory(device))
    ckpt = str(checkpoint_path(options.out)) if start else None
    with control.signals():
        try:
            trainer.fit(stage.module, datamodule=stage.data, ckpt_path=ckpt)
        except BaseException as exc:
            stop_children(trainer)
            if control.signum and isinstance(exc, (KeyboardInterrupt, SystemExit)):  # a second Ctrl-C
                raise TrainingInterrupted(
                    control.saved_step, control.signum, checkpoint_path(options.out), trainer.global_rank, True
                ) from None
            _raise_on_run_folder(exc, options.out)
            raise
    if control.stopped_by:
        raise TrainingInterrupted(control.step, control.stopped_by, checkpoint_path(options.out), trainer.global_rank)
    if not trainer.is_global_zero:
        return None
    model_dir = stage.export(stage.module, control.step)
    record = {"stage": stage.name, "steps": control.step, "device": device, "precision": trainer.precision,
              "world_size": trainer.world_size, "rank_weights_sha256": control.rank_digests}  # fmt: skip
    for summary in filter(None, (getattr(c, "summary", lambda: None)() for c in stage.callbacks)):
        line, record["validation"] = summary  # what validation found (train/validation.py)
        say(line)
    write_text_atomic(options.out / "run.json", json.dumps(record, indent=1) + "\n")
    return model_dir


def _resume_point(stage: Stage, options: RunOptions) -> int:
    """The step to continue from (0 for a new run); refuses a run folder of another stage or config."""
    path = checkpoint_path(options.out)
    if not options.resume or not path.is_file():
        return 0
    record = read_run_record(path)
    check_resumable(record, stage, options.out)
    return int(record["step"])


#: write failures for which the run folder is the place to look
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _raise_on_run_folder(exc: BaseException, out: Path) -> None:
    """A full disk met by a write that names no file (Lightning's CSV log) is reported on the run folder,
    not as `a file: No space left on device`."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno in _FULL:
        raise OSError(exc.errno, exc.strerror, str(out)) from exc


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _quiet_lightning() -> None:
    """Lightning's start-up banners (GPU available, tips) are noise for a CLI user."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # frozen LPIPS, on purpose
    # the sample streams resume themselves (SampleStream.resume_at)
    warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")


__all__ = ["PoseBatchTransfer", "RunOptions", "Stage", "TrainingInterrupted", "run_stage", "step_seed"]
