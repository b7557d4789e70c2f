"""Checked access to parsed JSON: each helper names the field it rejects and what it expected.

Readers raise only PoseFormatError; the field path (`people[0].pose_keypoints_2d[4]`) is part of the
message, and `read_pose` prefixes the file name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from posedraw.errors import PoseFormatError

Coordinates = Literal["pixels", "normalized"]


@dataclass(frozen=True)
class ReadOptions:
    """What a reader needs when the document does not say it.

    canvas: (width, height) for formats that store none (plain OpenPose, COCO results); overrides a
        canvas stored in the file.
    coordinates: 'pixels' or 'normalized' (0..1 of the canvas) when the document is ambiguous.
    image_id: which image of a COCO file holding several.
    frame: which frame of a ComfyUI POSE_KEYPOINT list (a JSON list of OpenPose documents); None reads the
        first and, when there are more, says so in a note.
    """

    canvas: tuple[float, float] | None = None
    coordinates: Coordinates | None = None
    image_id: int | str | None = None
    frame: int | None = None


@dataclass(frozen=True)
class WriteOptions:
    """Choices a writer offers.

    keep_confidence: OpenPose writers store each joint's own confidence instead of 1.0. ControlNet drops
        every keypoint whose confidence is below 1.0, so such files draw incompletely there.
    """

    keep_confidence: bool = False


def fail(where: str, expected: str, got: Any = None, show_got: bool = True) -> PoseFormatError:
    suffix = f", got {describe(got)}" if show_got else ""
    return PoseFormatError(f"{where}: expected {expected}{suffix}")


def describe(value: Any) -> str:
    """A short description of a bad value for an error message (never the whole document)."""
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__} of length {len(value)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, "a JSON object", value)
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise fail(where, "a JSON array", value)
    return value


def as_number(value: Any, where: str) -> float:
    """A finite JSON number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(where, "a number", value)
    try:
        number = float(value)
    except OverflowError:
        raise fail(where, "a finite number", value) from None
    if not math.isfinite(number):
        raise fail(where, "a finite number", value)
    return number


def as_positive(value: Any, where: str) -> float:
    number = as_number(value, where)
    if number <= 0:
        raise fail(where, "a positive number", value)
    return number


def numbers(value: Any, where: str, lengths: tuple[int, ...]) -> list[float]:
    """A JSON array of finite numbers whose length is one of `lengths`."""
    items = as_list(value, where)
    if len(items) not in lengths:
        allowed = " or ".join(str(n) for n in lengths)
        raise fail(where, f"an array of {allowed} numbers", items)
    return [as_number(v, f"{where}[{i}]") for i, v in enumerate(items)]


def reject_unknown_keys(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise fail(where, f"only the keys {sorted(allowed)}; unknown key {unknown[0]!r}", show_got=False)


def canvas_from(options: ReadOptions, stored: tuple[float, float] | None, where: str, how: str) -> tuple[float, float]:
    """The canvas: an explicit option wins, then the document's own; else an error that says how to give it."""
    if options.canvas is not None:
        return options.canvas
    if stored is not None:
        return stored
    raise fail(where, f"a canvas size; this document stores none, so {how}", show_got=False)


def json_number(value: float) -> int | float:
    """Whole numbers as JSON integers (canvas sizes are pixels); others unchanged."""
    return int(value) if float(value).is_integer() else float(value)
