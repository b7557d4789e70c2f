"""Error types a user can act on.

Each failure a user can fix has its own type, and every message names the file or field at fault and
what was expected, so the CLI can print it as one line and exit with code 2.
"""

from __future__ import annotations

from pathlib import Path


class PosedrawError(Exception):
    """Base class for every error caused by user input (bad file, bad option, missing weights)."""


class PoseFormatError(PosedrawError):
    """A pose document cannot be read or written in the requested format."""


class PoseError(PosedrawError):
    """A pose is invalid for the requested operation (wrong shape, no visible joint, ...)."""


class ImageReadError(PosedrawError):
    """An image file is missing, unreadable or not an image."""


class DetectionError(PosedrawError):
    """The pose detector is unavailable or found no person."""


class ConfigError(PosedrawError):
    """A config file or option has an unknown key or a value of the wrong type."""


class CheckpointError(PosedrawError):
    """A checkpoint or model folder cannot be loaded or converted."""


class SamplingError(PosedrawError):
    """A sampling step produced inf or nan from valid options (a damaged model, extreme start latents):
    raised instead of making an image from them."""


class DataError(PosedrawError):
    """A dataset or image folder is missing or has no usable samples."""


class TrainingInterrupted(Exception):
    """The run stopped on a signal; `checkpoint` holds `step`. Raised on every rank."""

    def __init__(self, step: int, signum: int, checkpoint: Path, rank: int, at_once: bool = False) -> None:
        if at_once:
            text = f"stopped at once; {checkpoint} holds step {step}; rerun the same command to continue from there"
        else:
            text = f"interrupted at step {step}, saved {checkpoint}; rerun the same command to continue"
        super().__init__(text)
        self.step, self.signum, self.checkpoint, self.rank = step, signum, checkpoint, rank

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
