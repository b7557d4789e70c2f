"""Reading model folders: a damaged file is one CheckpointError naming that file, whichever library reads it.

diffusers, transformers and safetensors each report a truncated, empty or garbage file their own way
(OSError, ValueError, safetensors' `SafetensorError`, a RuntimeError from a size mismatch), often in many
lines and without the file's name. So a folder's components are checked before they are loaded: every
config must be a JSON object, every model component must have weights, and every weights file's
safetensors header must be readable and cover the file (headers only: cheap next to loading the weights).
What loading can still raise is listed in `READ_ERRORS`, for the callers to map to one line with
`read_failure`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from safetensors import SafetensorError, safe_open

from posedraw.errors import CheckpointError

#: what the libraries raise on a damaged model folder
READ_ERRORS: tuple[type[Exception], ...] = (
    OSError, ValueError, KeyError, AttributeError, TypeError, RuntimeError, SafetensorError
)  # fmt: skip
#: the config file of a component: models have config.json, schedulers scheduler_config.json
CONFIG_NAMES = ("config.json", "scheduler_config.json")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The exception's class and the first line of its message, shortened: library messages run long."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def read_failure(folder: Path, what: str, exc: BaseException) -> CheckpointError:
    """The one-line error for a model folder a library could not load."""
    return CheckpointError(f"{folder}: not a loadable {what} ({first_line(exc)})")


def check_config(path: Path) -> None:
    """Refuse a config file that is not a JSON object."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable JSON config ({first_line(exc)}); the model folder is "
                              "damaged: copy or save it again") from None  # fmt: skip
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(config).__name__}")


def check_weights(path: Path) -> None:
    """Refuse a safetensors file whose header cannot be read or does not cover the file (truncated)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({first_line(exc)}); it is truncated or "
                              "damaged: copy or save the model again") from None  # fmt: skip


def check_component_files(folder: Path, components: Iterable[str]) -> None:
    """Check the config and weights files of each component sub-folder of a model folder (module doc)."""
    for name in components:
        sub = folder / name
        configs = [sub / c for c in CONFIG_NAMES if (sub / c).is_file()]
        if not configs:
            raise CheckpointError(f"{sub}: expected {' or '.join(CONFIG_NAMES)}; the model folder is incomplete")
        for config in configs:
            check_config(config)
        weights = sorted(sub.glob("*.safetensors"))
        if not weights and configs[0].name == "config.json":  # a model, not a scheduler: it has weights
            raise CheckpointError(f"{sub}: expected a *.safetensors weights file; the model folder is incomplete")
        for path in weights:
            check_weights(path)


__all__ = ["READ_ERRORS", "check_component_files", "check_config", "check_weights", "first_line", "read_failure"]
