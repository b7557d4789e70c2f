"""`posedraw train curves`: the metrics a run logged (loss, validation scores) as one PNG of curves.

A run's CSV logs are `logs/version_N/metrics.csv`, one version per start of the command (a resumed run
adds one), so the curves join every version in step order; a step logged again by a later version (a run
resumed from an earlier checkpoint) shows the later value.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from posedraw.errors import DataError

#: columns of the CSV logs that are not metrics (val/images counts the poses each validation drew)
NOT_METRICS = ("epoch", "step", "val/images")


def log_files(run: Path) -> list[Path]:
    """The run's metrics.csv files, oldest version first."""
    if not run.is_dir():
        raise DataError(f"{run}: no such run folder")
    files = [p for p in (run / "logs").glob("version_*/metrics.csv") if p.is_file()]
    if not files:
        raise DataError(f"{run}: no training logs (expected logs/version_N/metrics.csv, written by posedraw train)")
    return sorted(files, key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))


def read_curves(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Metric name -> (step, value) in step order, over every log version of the run."""
    found: dict[str, dict[int, float]] = {}
    for path in log_files(run):
        try:
            with path.open(newline="", encoding="utf-8") as file:
                for row in csv.DictReader(file):
                    step = int(float(row["step"]))
                    for name, value in row.items():
                        if name not in NOT_METRICS and name is not None and value not in ("", None):
                            found.setdefault(name, {})[step] = float(value)
        except (KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError):
            raise DataError(f"{path}: not a training log (expected Lightning's CSV with a step column)") from None
    if not found:
        raise DataError(f"{run}: its training logs hold no metrics yet")
    return {name: sorted(values.items()) for name, values in sorted(found.items(), key=lambda kv: _order(kv[0]))}


def _order(name: str) -> tuple[int, str]:
    """The loss first, then the validation scores, then anything else."""
    return (0 if name == "loss" else 1 if name.startswith("val/") else 2, name)


def plot_curves(curves: dict[str, list[tuple[int, float]]], path: Path, title: str = "") -> Path:
    """One panel per metric (x: training step), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from posedraw.io import atomic_path
    from posedraw.train.validation import direction

    columns = min(3, len(curves))
    rows = math.ceil(len(curves) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for ax, (name, points) in zip(axes.flat, curves.items()):
        steps, values = zip(*points)
        ax.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3, linewidth=1.2)
        better = direction(name)
        ax.set_title(name + (f" ({better} is better)" if better else ""), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=90)
    finally:
        plt.close(figure)
    return path
