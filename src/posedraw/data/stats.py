"""`posedraw data stats`: a report a person can look at — joint position heatmaps per joint, visible-joint
counts, skip reasons and tag frequencies, as PNG plots plus a JSON summary."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from posedraw.data.shards import read_manifest
from posedraw.io import atomic_path, write_text_atomic
from posedraw.pose import JOINTS


def _save(figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)


def joint_heatmaps(rows: list[dict[str, Any]], path: Path, bins: int = 32) -> None:
    figure, axes = plt.subplots(3, 6, figsize=(15, 8))
    for j, ax in enumerate(axes.flat):
        if j >= len(JOINTS):
            ax.axis("off")
            continue
        points = np.array([r["pose"][j][:2] for r in rows if r.get("pose") and r["pose"][j][2]], dtype=float)
        grid = np.zeros((bins, bins))
        if len(points):
            grid, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=bins, range=[[0, 1], [0, 1]])
        ax.imshow(grid, cmap="magma", extent=(0, 1, 1, 0))
        ax.set_title(f"{JOINTS[j]} ({len(points)})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle("where each joint lies (normalized canvas, kept samples)")
    _save(figure, path)


def bar_chart(counts: Counter, title: str, path: Path, top: int = 30) -> None:
    items = counts.most_common(top)
    figure, ax = plt.subplots(figsize=(10, max(2.5, 0.3 * len(items) + 1)))
    ax.barh([str(k) for k, _ in reversed(items)], [v for _, v in reversed(items)], color="#4a7bd0")
    ax.set_title(title)
    _save(figure, path)


def write_report(manifest: Path, out: Path) -> dict[str, Any]:
    rows = read_manifest(manifest)
    kept = [r for r in rows if r.get("status") == "kept"]
    out.mkdir(parents=True, exist_ok=True)
    visible = Counter(int(r.get("visible_joints", 0)) for r in kept)
    reasons = Counter(str(r.get("reason")) for r in rows if r.get("status") != "kept")
    tags = Counter(t for r in kept for t in r.get("tags", []))
    joint_heatmaps(kept, out / "joint_heatmaps.png")
    bar_chart(
        Counter({f"{k} joints": v for k, v in sorted(visible.items())}),
        "visible joints per kept sample",
        out / "visible_joints.png",
        top=18,
    )
    bar_chart(reasons, "why inputs were skipped", out / "skip_reasons.png")
    bar_chart(tags, "most frequent tags (kept samples)", out / "tags.png")
    summary = {
        "inputs": len(rows),
        "kept": len(kept),
        "skipped": dict(reasons.most_common()),
        "visible_joints": dict(sorted(visible.items())),
        "top_tags": dict(tags.most_common(30)),
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary
