"""The check every stage's train section shares: counts that a run divides by or loops over."""

from __future__ import annotations

from typing import Any


def require_counts(section: Any, names: tuple[str, ...]) -> None:
    """Refuse a count below 1 among `names` of a config section (a batch of 0, a checkpoint every 0 steps)
    at load time: it would otherwise fail after the data were read, as a traceback. A ValueError, which
    `posedraw.config.from_dict` reports as a ConfigError naming the section and field."""
    for name in names:
        value = getattr(section, name)
        if value < 1:
            raise ValueError(f"{name}: expected at least 1, got {value}")
