"""The studio's gallery: the PNGs under `--out` with the recipes `generate` writes into them.

The folder is the gallery's only state, so it survives a restart; names from requests are checked to be a
plain file name of this folder (no `..`, no slash) before any file is touched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from posedraw.errors import PosedrawError
from posedraw.pipelines.outputs import read_png_metadata
from posedraw.pose import dump_pose

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.png$")


class BadName(PosedrawError):
    """A file name from a request that is not a plain PNG name of the gallery."""


def image_path(out: Path, name: str) -> Path:
    """The gallery file `name`; refuses anything but a plain PNG file name (so nothing outside `out`)."""
    if "/" in name or "\\" in name or ".." in name or not _NAME.match(name):
        raise BadName(f"image name: expected a plain PNG file name of the gallery, got {name!r}")
    return out / name


def recipe(path: Path) -> dict[str, Any] | None:
    """The pose, seed, model and options an image was drawn with; None for a PNG without them."""
    try:
        job, options, model = read_png_metadata(path)
    except PosedrawError:
        return None
    return {"pose": dump_pose(job.pose), "pose_name": job.name, "seed": job.seed, "model": model, "options": options}


def list_images(out: Path) -> list[dict[str, Any]]:
    """Every posedraw PNG of the gallery, newest first, with its recipe."""
    entries = []
    for path in out.glob("*.png"):
        if path.name.startswith(".") or not _NAME.match(path.name):
            continue
        found = recipe(path)
        if found is not None:
            entries.append((path.stat().st_mtime, {"name": path.name, "url": f"/api/images/{path.name}", **found}))
    return [entry for _, entry in sorted(entries, key=lambda e: (-e[0], e[1]["name"]))]


__all__ = ["BadName", "image_path", "list_images", "recipe"]
