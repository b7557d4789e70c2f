"""Loading a generator from a model folder: the pipeline class is the one `model_index.json` names.

A folder is a diffusers pipeline folder; which of posedraw's generators it holds is read from its
`model_index.json` (`_class_name`), never guessed from its files. Transformer folders of earlier versions
(no `model_index.json`) are converted on load, with a note. `builtin` and `builtin:transformer` name the
models shipped in the package. A damaged folder (a missing, truncated or garbage file) is one
CheckpointError naming the file, whichever library would have read it (models/files.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from posedraw.errors import CheckpointError
from posedraw.models.files import READ_ERRORS, check_component_files, read_failure
from posedraw.pipelines.code_transformer import CodeTransformerPipeline, is_folder_of_earlier_version
from posedraw.pipelines.drawing import DrawingPipeline
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline

PIPELINES: dict[str, type[DrawingPipeline]] = {
    cls.__name__: cls for cls in (KeypointLDMPipeline, CodeTransformerPipeline)
}


def resolve_model(model: str | Path | None) -> Path:
    """A model folder from a path, `builtin` / `builtin:diffusion` (the default) or `builtin:transformer`."""
    from posedraw.builtin import builtin_model

    name = "builtin" if model is None else str(model)
    if name in ("builtin", "builtin:diffusion"):
        return builtin_model("diffusion")
    if name == "builtin:transformer":
        return builtin_model("transformer")
    if name.startswith("builtin:"):
        raise CheckpointError(f"--model {name}: expected builtin, builtin:diffusion or builtin:transformer")
    return Path(name)


def load_pipeline(model: str | Path | None, device: str = "cpu", notes: list[str] | None = None) -> DrawingPipeline:
    """The generator in a model folder (see the module docstring), on `device`."""
    folder = resolve_model(model)
    with _quiet_loading():
        if is_folder_of_earlier_version(folder):
            if notes is not None:
                notes.append(f"{folder} is a transformer folder of an earlier posedraw version: converted on load "
                             "(CodeTransformerPipeline.save_pretrained writes it in the new form)")  # fmt: skip
            return CodeTransformerPipeline.from_folder_of_earlier_version(folder).to(device)
        index = _model_index(folder)
        cls = PIPELINES.get(str(index["_class_name"]))
        if cls is None:
            raise CheckpointError(f"{folder}: model_index.json names {index['_class_name']!r}, not a posedraw "
                                  f"generator ({', '.join(PIPELINES)})")  # fmt: skip
        check_component_files(folder, _components(index))
        try:
            pipeline = cls.from_pretrained(folder, use_safetensors=True)
        except READ_ERRORS as exc:
            raise read_failure(folder, cls.__name__, exc) from None
    return pipeline.to(device)


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No library warnings or progress bars while loading: a bar for a few small files is noise, and an
    error is one line."""
    logging.getLogger("diffusers").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()


def _model_index(folder: Path) -> dict:
    """The folder's model_index.json, which names the pipeline class and its components."""
    index = folder / "model_index.json"
    if not index.is_file():
        if (folder / "vq" / "config.json").is_file():
            raise CheckpointError(
                f"{folder}: a VQ model folder, not a generator (give it as --vq, or a pipeline folder)"
            )
        raise CheckpointError(f"{folder}: expected a model folder with model_index.json (made by convert ldm, "
                              "train ldm or train transformer)")  # fmt: skip
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or "_class_name" not in data:
        raise CheckpointError(f"{index}: not a readable model index (no _class_name)")
    return data


def _components(index: dict) -> list[str]:
    """The component sub-folders a model index lists (optional ones it marks absent with null are left out)."""
    return [name for name, entry in index.items()
            if not name.startswith("_") and isinstance(entry, list) and None not in entry]  # fmt: skip


__all__ = ["PIPELINES", "load_pipeline", "resolve_model"]
