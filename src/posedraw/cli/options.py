"""Option types and parsers shared by several commands."""

from __future__ import annotations

import re
from enum import Enum

from posedraw.errors import PosedrawError
from posedraw.pose.formats import ReadOptions


class FormatName(str, Enum):
    posedraw = "posedraw"
    openpose = "openpose"
    coco = "coco"
    danbooru = "danbooru"


class CoordinateSpace(str, Enum):
    pixels = "pixels"
    normalized = "normalized"


def parse_canvas(text: str | None) -> tuple[float, float] | None:
    """'512x768' -> (512.0, 768.0)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[xX]\s*(\d+(?:\.\d+)?)\s*", text)
    if not match or float(match[1]) <= 0 or float(match[2]) <= 0:
        raise PosedrawError(f"--canvas: expected WIDTHxHEIGHT with positive numbers (e.g. 512x768), got {text!r}")
    return float(match[1]), float(match[2])


def read_options(canvas: str | None, coords: CoordinateSpace | None, image_id: str | None) -> ReadOptions:
    image: int | str | None = int(image_id) if image_id is not None and image_id.isdigit() else image_id
    return ReadOptions(
        canvas=parse_canvas(canvas),
        coordinates=None if coords is None else coords.value,  # type: ignore[arg-type]
        image_id=image,
    )
