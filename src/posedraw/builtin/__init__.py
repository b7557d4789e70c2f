"""The built-in model: a small VQ + pose-conditioned diffusion pipeline trained on toy figures on CPU.

`posedraw generate` without `--model` uses it, so a fresh install draws in seconds. It is rebuilt with
`scripts/build_builtin_model.sh` (the commands and configs are in the repository).
"""

from __future__ import annotations

from pathlib import Path

from posedraw.errors import CheckpointError

MODEL = Path(__file__).parent / "toy-figures"


def builtin_model() -> Path:
    if not (MODEL / "model_index.json").is_file():
        raise CheckpointError(f"{MODEL}: the built-in model is missing from this installation; pass --model DIR")
    return MODEL
