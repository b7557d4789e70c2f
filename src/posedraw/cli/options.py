"""Option types and parsers shared by several commands."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated

import typer

from posedraw.errors import PosedrawError
from posedraw.pose.formats import ReadOptions


class FormatName(str, Enum):
    posedraw = "posedraw"
    openpose = "openpose"
    openpose25 = "openpose25"
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


def read_options(
    canvas: str | None, coords: CoordinateSpace | None, image_id: str | None, frame: int | None = None
) -> ReadOptions:
    image: int | str | None = int(image_id) if image_id is not None and image_id.isdigit() else image_id
    return ReadOptions(
        canvas=parse_canvas(canvas),
        coordinates=None if coords is None else coords.value,  # type: ignore[arg-type]
        image_id=image,
        frame=frame,
    )


ImageIdOption = Annotated[str | None, typer.Option("--image-id", help="Which image of a COCO file.")]
FrameOption = Annotated[
    int | None, typer.Option("--frame", min=0, help="Which frame of a ComfyUI POSE_KEYPOINT list (default: 0).")
]


def print_notes(notes: list[str]) -> None:
    """Notes from reading or writing pose files, one plain line each on stderr."""
    for note in notes:
        typer.echo(f"note: {note}", err=True)
