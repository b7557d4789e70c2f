"""The built-in models, trained on toy figures on a CPU and shipped in the package.

`posedraw generate` without `--model` uses the diffusion model (`builtin`, folder `toy-figures`), so a fresh
install draws in seconds; `--model builtin:transformer` the code transformer (folder `toy-transformer`).
They are rebuilt with `scripts/build_builtin_model.sh` and `scripts/build_builtin_transformer.sh` (the
commands and configs are in the repository).
"""

from __future__ import annotations

from pathlib import Path

from posedraw.errors import CheckpointError

MODELS = {"diffusion": Path(__file__).parent / "toy-figures", "transformer": Path(__file__).parent / "toy-transformer"}
MODEL = MODELS["diffusion"]


def builtin_model(kind: str = "diffusion") -> Path:
    """The folder of the built-in model of `kind` ("diffusion" or "transformer")."""
    folder = MODELS[kind]
    if not (folder / "model_index.json").is_file():
        raise CheckpointError(f"{folder}: the built-in {kind} model is missing from this installation; give --model")
    return folder
