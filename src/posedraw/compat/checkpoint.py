"""Loading original checkpoint files safely.

Original checkpoints are pickles (`torch.save` of a Lightning dict). Unpickling can run arbitrary code,
so they are loaded with `weights_only=True`, which only rebuilds tensors and plain containers. A file that
needs more is refused unless the user says they trust it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from posedraw.errors import CheckpointError


def load_state_dict(path: str | Path, trust_checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """The `state_dict` of a .ckpt/.pt/.pth (Lightning dict or bare state dict) or a .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    raw = _load_pickle(path, trust_checkpoint)
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a checkpoint with a 'state_dict' of tensors")
    return state


def _load_pickle(path: Path, trust_checkpoint: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_checkpoint)
    except pickle.UnpicklingError as exc:
        if trust_checkpoint:
            raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
        raise CheckpointError(
            f"{path}: this checkpoint holds Python objects besides tensors, and unpickling them can run "
            "arbitrary code; if you trust where the file came from, pass --trust-checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__})") from None
