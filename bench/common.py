"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def publish(name: str, fields: dict, json_path: Path | None) -> dict:
    """The bench's report: its name, date, machine, torch threads and command line, then `fields`; printed
    as one JSON line and, with `json_path`, written there (bench/results/<name>.json by convention)."""
    import json
    import platform
    import sys
    import time

    import torch

    report = {
        "bench": name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        **fields,
    }
    print(json.dumps(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=1) + "\n")
    return report
