"""Where the shipped configs live (inside the package, so an installed posedraw has them too)."""

from __future__ import annotations

from pathlib import Path

CONFIGS = Path(__file__).parent / "configs"


def shipped_config(name: str) -> Path:
    return CONFIGS / f"{name}.yaml"
