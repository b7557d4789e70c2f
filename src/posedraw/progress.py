"""Progress of long work: a bar with the total and time left on a terminal, a line every 10 % elsewhere.

Rich's bars draw nothing when stderr is not a terminal (a log file, CI, `nohup`), so a long job would be
silent for minutes there; this prints plain progress lines instead.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def duration(seconds: float) -> str:
    """1h05m, 4m05s; ? for an unknown rate."""
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@contextlib.contextmanager
def progress(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`; shows `label` with done/total and time left (see the module docstring)."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n=1: bar.advance(task, n)
        return
    began, done, shown = time.monotonic(), [0], [0]
    every = max(1, total // 10)

    def advance(n: int = 1) -> None:
        done[0] += n
        if done[0] - shown[0] >= every or done[0] == total:
            shown[0] = done[0]
            elapsed = time.monotonic() - began
            left = elapsed / done[0] * (total - done[0])
            print(f"{label}: {done[0]}/{total} ({100 * done[0] // total}%), {duration(left)} left",
                  file=sys.stderr, flush=True)  # fmt: skip

    yield advance


def tracked(items: Iterable[T], label: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """Iterate `items`, showing progress as `progress` does."""
    items = list(items) if total is None else items
    count = len(items) if total is None else total  # type: ignore[arg-type]
    with progress(label, count, enabled) as advance:
        for item in items:
            yield item
            advance(1)


__all__ = ["duration", "progress", "tracked"]
