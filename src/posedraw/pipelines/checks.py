"""Checks of a drawing request that the command line and the studio share, so both refuse the same values
with the same words."""

from __future__ import annotations

from typing import Any

from posedraw.pipelines.drawing import check_seed


def seed_run(first: Any, count: int, seed_name: str = "--seed", count_name: str = "--num") -> list[int]:
    """The seeds of `count` images from `first` (first, first + 1, ...), each one a generator takes.

    The last one is checked too: a first seed near the top of the range leaves no room for more images,
    which is the count's fault, so the error names both fields."""
    first = check_seed(first, seed_name)
    check_seed(first + count - 1, f"{count_name} (the last seed, {seed_name} + {count_name} - 1)")
    return list(range(first, first + count))


__all__ = ["seed_run"]
