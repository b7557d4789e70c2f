"""Everything that depends on the device a job runs on, decided in one place from that device.

GPU and CPU share one code path; only these choices differ: the default training precision, the autocast
dtype, fused optimizer kernels and pinned loader memory. They follow the device the job was given
(`--device`), never merely whether a GPU happens to be present.
"""

from __future__ import annotations

from typing import Any

import torch

from posedraw.errors import ConfigError


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
    """Lightning precision for training: bf16 autocast on GPUs that have it (fp16 on older ones), fp32 on CPU
    (bf16 autocast on a CPU is slower than fp32 for these convolutions)."""
    if device == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def inference_autocast(device: torch.device | str) -> torch.autocast:
    """The autocast inference runs under: bf16 on CUDA, off (fp32) on the CPU."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda")


def optimizer_options(device: torch.device | str) -> dict[str, Any]:
    """Keyword arguments for torch's Adam/AdamW on `device`: the fused kernel on CUDA."""
    return {"fused": True} if torch.device(device).type == "cuda" else {}


def pin_memory(device: str) -> bool:
    """Page-locked loader memory speeds host-to-GPU copies; it is wasted work for a CPU run."""
    return torch.device(device).type == "cuda"
