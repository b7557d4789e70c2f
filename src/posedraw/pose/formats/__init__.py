"""Reading and writing poses in every supported file format, with format auto-detection.

Formats by their CLI names: `posedraw` (our own, lossless), `openpose`, `coco`, `danbooru` (the original
system's keypoint files). Nothing outside this package knows about formats: they convert to and from
`Pose` here. Every reader raises only `PoseFormatError`, naming the file and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posedraw.errors import PoseError, PoseFormatError
from posedraw.io import write_text_atomic
from posedraw.pose.core import Pose
from posedraw.pose.formats import coco, danbooru, openpose, posedraw_json
from posedraw.pose.formats.fields import ReadOptions

__all__ = ["FORMATS", "ReadOptions", "detect_format", "dump_pose", "parse_pose", "read_pose", "write_pose"]


@dataclass(frozen=True)
class PoseFormat:
    name: str
    looks_like: Callable[[Any], bool]
    read: Callable[[Any, ReadOptions], Pose]
    write: Callable[[Pose], Any]


# Detection order matters: the markers of the first three are explicit keys; danbooru is a bare dict.
FORMATS: dict[str, PoseFormat] = {
    f.name: f
    for f in (
        PoseFormat("posedraw", posedraw_json.looks_like, posedraw_json.read, posedraw_json.write),
        PoseFormat("openpose", openpose.looks_like, openpose.read, openpose.write),
        PoseFormat("coco", coco.looks_like, coco.read, coco.write),
        PoseFormat("danbooru", danbooru.looks_like, danbooru.read, danbooru.write),
    )
}


def _format(name: str) -> PoseFormat:
    if name not in FORMATS:
        raise PoseFormatError(f"format {name!r}: expected one of {', '.join(FORMATS)}")
    return FORMATS[name]


def detect_format(doc: Any) -> str:
    """The name of the format a parsed JSON document is in."""
    for fmt in FORMATS.values():
        if fmt.looks_like(doc):
            return fmt.name
    raise PoseFormatError(
        "document: expected a pose document (posedraw 'schema', OpenPose 'people', COCO 'annotations' or "
        "results, or danbooru {joint: [row, col]}), got " + type(doc).__name__
    )


def _reject_constant(name: str) -> Any:
    raise PoseFormatError(f"document: expected finite numbers, got {name}")


def loads_json(text: str) -> Any:
    """Parse JSON strictly: NaN and Infinity literals are errors, not floats."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PoseFormatError(f"expected JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PoseFormatError("expected JSON: nesting too deep") from None


def parse_pose(doc: Any, fmt: str | None = None, options: ReadOptions | None = None) -> Pose:
    """A Pose from a parsed JSON document, in format `fmt` or the detected one."""
    options = options or ReadOptions()
    reader = _format(fmt or detect_format(doc))
    try:
        return reader.read(doc, options)
    except PoseError as exc:  # arrays the format allowed but a Pose does not
        raise PoseFormatError(str(exc)) from None


def read_pose(path: str | os.PathLike[str], fmt: str | None = None, options: ReadOptions | None = None) -> Pose:
    """Read a pose file; errors name the file and the field at fault."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PoseFormatError(f"{path}: no such pose file") from None
    except UnicodeDecodeError:
        raise PoseFormatError(f"{path}: expected UTF-8 JSON text, got binary data") from None
    except OSError as exc:
        raise PoseFormatError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return parse_pose(loads_json(text), fmt, options)
    except PoseFormatError as exc:
        raise PoseFormatError(f"{path}: {exc}") from None


def dump_pose(pose: Pose, fmt: str = "posedraw") -> Any:
    """The JSON-ready document of `pose` in format `fmt`."""
    return _format(fmt).write(pose)


def write_pose(pose: Pose, path: str | os.PathLike[str], fmt: str = "posedraw") -> None:
    """Write a pose file atomically (a failed write leaves no partial file)."""
    try:
        doc = dump_pose(pose, fmt)
    except PoseFormatError as exc:
        raise PoseFormatError(f"{path}: {exc}") from None
    indent = 1 if fmt == "posedraw" else None  # our own format is meant to be read and edited by people
    write_text_atomic(path, json.dumps(doc, indent=indent, allow_nan=False) + "\n")
