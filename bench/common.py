"""Helpers shared by the benchmark scripts: the report's header and its file, memory and machine load, and
timing that alternates the things compared."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_load() -> float:
    """The 1-minute load average: other work on the machine slows a CPU bench, so reports record it."""
    return round(os.getloadavg()[0], 2)


def alternate(
    ways: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds of each way and its last result. Every round runs each way once, in turn (A B A B ...),
    so a machine that slows down or speeds up during the bench slows every way alike; the first `warmup`
    rounds are not timed (allocator, kernel choice, lazy initialization). `sync` (e.g.
    torch.cuda.synchronize) runs before the clock stops, so queued device work is counted."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    results: dict[str, Any] = {}
    for round_ in range(warmup + repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            results[name] = way()
            if sync is not None:
                sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}, results


def report_header(name: str, machine: str | None = None) -> dict[str, Any]:
    """The fields every report starts with: its name, date, machine (the processor unless given, e.g. a
    GPU's name), torch threads and command line."""
    import platform
    import sys

    import torch

    return {
        "bench": name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine or platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
    }


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    """Write through a temporary file and a rename: a reader (or a run cut off by a time limit) never
    leaves half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=1) + "\n")
    partial.replace(path)


def publish(name: str, fields: dict, json_path: Path | None, machine: str | None = None) -> dict:
    """The bench's report: `report_header`, then `fields`; printed as one JSON line and, with `json_path`,
    written there (bench/results/<name>.json by convention)."""
    report = {**report_header(name, machine), **fields}
    print(json.dumps(report))
    if json_path is not None:
        write_json(json_path, report)
    return report
