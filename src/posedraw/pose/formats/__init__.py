"""Reading and writing poses in every supported file format, with format auto-detection.

Formats by their CLI names: `posedraw` (our own, lossless), `openpose` (18-point layout, what ControlNet
reads; also reads BODY_25 and ComfyUI frame lists), `openpose25` (writes BODY_25 with mid-hip and feet;
its files detect as `openpose`; named, it reads 75 values as BODY_25 without the padding rule), `coco`
(with COCO-WholeBody), `danbooru` (the original system's keypoint files). Nothing outside this package
knows about formats: they convert to and from `Pose` here.
Every reader raises only `PoseFormatError`, naming the file and the field.

Notes: what a reader chose for the user (the first of several frames, a padded layout) and what a
writer's format cannot hold are not errors, but the user should hear of them. Pass a list as `notes`
and each becomes one line of plain text appended to it; the CLI prints them as `note: ...`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from posedraw.errors import PoseError, PoseFormatError
from posedraw.io import write_text_atomic
from posedraw.pose.core import Pose
from posedraw.pose.formats import coco, danbooru, openpose, posedraw_json
from posedraw.pose.formats.fields import ReadOptions, WriteOptions

__all__ = [
    "FORMATS",
    "MAX_JSON_DEPTH",
    "MAX_POSE_FILE_BYTES",
    "ReadOptions",
    "WriteOptions",
    "detect_format",
    "dump_pose",
    "json_depth",
    "loads_json",
    "parse_pose",
    "read_pose",
    "write_pose",
]


@dataclass(frozen=True)
class PoseFormat:
    """A file format: how to recognise, read and write it, and what of a pose it cannot hold.

    `left_out` names, in words, what `write` drops from a given pose; `detected` is False for a writer
    variant whose files detect as another format.
    """

    name: str
    looks_like: Callable[[Any], bool]
    read: Callable[[Any, ReadOptions, list[str]], Pose]
    write: Callable[[Pose, WriteOptions], Any]
    left_out: Callable[[Pose, WriteOptions], list[str]]
    detected: bool = True


# Detection order matters: the markers of the first three are explicit keys; danbooru is a bare dict.
FORMATS: dict[str, PoseFormat] = {
    f.name: f
    for f in (
        PoseFormat(
            "posedraw", posedraw_json.looks_like, posedraw_json.read, posedraw_json.write, posedraw_json.left_out
        ),
        PoseFormat("openpose", openpose.looks_like, openpose.read, openpose.write, openpose.left_out),
        PoseFormat(
            "openpose25",
            openpose.looks_like,
            openpose.read_body25,
            openpose.write_body25,
            openpose.left_out_body25,
            False,
        ),
        PoseFormat("coco", coco.looks_like, coco.read, coco.write, coco.left_out),
        PoseFormat("danbooru", danbooru.looks_like, danbooru.read, danbooru.write, danbooru.left_out),
    )
}


def _format(name: str) -> PoseFormat:
    if name not in FORMATS:
        raise PoseFormatError(f"format {name!r}: expected one of {', '.join(FORMATS)}")
    return FORMATS[name]


def detect_format(doc: Any) -> str:
    """The name of the format a parsed JSON document is in."""
    for fmt in FORMATS.values():
        if fmt.detected and fmt.looks_like(doc):
            return fmt.name
    raise PoseFormatError(
        "document: expected a pose document (posedraw 'schema', OpenPose 'people' or a ComfyUI list of them, "
        "COCO 'annotations' or results, or danbooru {joint: [row, col]}), got " + type(doc).__name__
    )


def _reject_constant(name: str) -> Any:
    raise PoseFormatError(f"document: expected finite numbers, got {name}")


#: deepest JSON nesting read: the deepest pose document (a ComfyUI frame list of OpenPose people) has 5
#: levels; a bound far below the parser's recursion limit keeps a crafted file from ever reaching it
MAX_JSON_DEPTH = 64
#: largest pose file read: one pose is kilobytes; a ComfyUI list of a 20-minute video's frames (36 000
#: frames of one person) is about 30 MB and reads in 2 s, while a file ten times that would take minutes
MAX_POSE_FILE_BYTES = 32 * 1024 * 1024

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, found without recursion (strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def loads_json(text: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON strictly: NaN and Infinity literals are errors, not floats, and nesting deeper than
    `limit` is refused before parsing, so neither the parser nor a reader walking the result recurses
    past Python's limit."""
    if json_depth(text) > limit:
        raise PoseFormatError(f"expected JSON nested at most {limit} levels deep")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PoseFormatError(f"expected JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # unreachable below the depth limit; kept so no limit change can give a traceback
        raise PoseFormatError("expected JSON: nesting too deep") from None


def _parse(doc: Any, fmt: str | None, options: ReadOptions | None, notes: list[str] | None, source: str) -> Pose:
    """Read `doc`; each reader note becomes `source` followed by the note (a predicate of the file)."""
    found: list[str] = []
    reader = _format(fmt or detect_format(doc))
    try:
        pose = reader.read(doc, options or ReadOptions(), found)
    except PoseError as exc:  # arrays the format allowed but a Pose does not
        raise PoseFormatError(str(exc)) from None
    if notes is not None:
        notes.extend(f"{source} {note}" for note in found)
    return pose


def parse_pose(
    doc: Any, fmt: str | None = None, options: ReadOptions | None = None, notes: list[str] | None = None
) -> Pose:
    """A Pose from a parsed JSON document, in format `fmt` or the detected one; notes go to `notes`."""
    return _parse(doc, fmt, options, notes, "the document")


def read_pose(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    options: ReadOptions | None = None,
    notes: list[str] | None = None,
) -> Pose:
    """Read a pose file; errors name the file and the field at fault.

    Notes ("pose.json holds 3 frames; read frame 0 ...") are appended to `notes` when it is given.
    """
    text = _read_text(path)
    try:
        return _parse(loads_json(text), fmt, options, notes, str(path))
    except PoseFormatError as exc:
        raise PoseFormatError(f"{path}: {exc}") from None


def _read_text(path: str | os.PathLike[str]) -> str:
    """A pose file's text; one over `MAX_POSE_FILE_BYTES` is refused by its size, before it is read."""
    try:
        size = os.stat(path).st_size
        if size > MAX_POSE_FILE_BYTES:
            raise PoseFormatError(f"{path}: expected a pose file of at most {MAX_POSE_FILE_BYTES // 2**20} MB, "
                                  f"got {size / 2**20:.1f} MB")  # fmt: skip
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PoseFormatError(f"{path}: no such pose file") from None
    except UnicodeDecodeError:
        raise PoseFormatError(f"{path}: expected UTF-8 JSON text, got binary data") from None
    except OSError as exc:
        raise PoseFormatError(f"{path}: cannot read ({exc.strerror})") from None


def dump_pose(
    pose: Pose,
    fmt: str = "posedraw",
    options: WriteOptions | None = None,
    notes: list[str] | None = None,
    target: str = "the document",
) -> Any:
    """The JSON-ready document of `pose` in format `fmt`; what the format cannot hold goes to `notes`."""
    writer, options = _format(fmt), options or WriteOptions()
    doc = writer.write(pose, options)
    lost = writer.left_out(pose, options)
    if notes is not None and lost:
        notes.append(f"left out of {target} ({fmt}): {'; '.join(lost)}")
    return doc


def write_pose(
    pose: Pose,
    path: str | os.PathLike[str],
    fmt: str = "posedraw",
    options: WriteOptions | None = None,
    notes: list[str] | None = None,
) -> None:
    """Write a pose file atomically (a failed write leaves no partial file); see `dump_pose` for notes."""
    try:
        doc = dump_pose(pose, fmt, options, notes, str(path))
    except PoseFormatError as exc:
        raise PoseFormatError(f"{path}: {exc}") from None
    indent = 1 if fmt == "posedraw" else None  # our own format is meant to be read and edited by people
    write_text_atomic(path, json.dumps(doc, indent=indent, allow_nan=False) + "\n")
