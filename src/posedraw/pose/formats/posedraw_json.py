"""posedraw's own pose JSON, schema `posedraw.pose/1`: explicit canvas, coordinate space and states.

    {
      "schema": "posedraw.pose/1",
      "canvas": {"width": 512, "height": 768},
      "coordinates": "pixels",            # or "normalized": fractions of width / height
      "people": [
        {"joints": {"nose": {"x": 251.5, "y": 80.0, "state": "visible", "confidence": 0.98},
                    "left_eye": {"state": "absent"}, ...},
         "parts": {"left_hand": [{"x": 300.0, "y": 410.5, "state": "visible"}, {"state": "absent"}, ...],
                   "face": [...]},       # optional: every point of each part, in schema.PARTS order
         "prompt": "red hair, blue dress"}  # optional: what to draw for this person (per-person prompt)
      ],
      "meta": {...}                       # optional, free-form, ignored by the reader
    }

Pixels: x right, y down, origin at the top-left corner of the canvas. A joint left out of `joints` is
absent; so is every point of a part a person does not list. `people` may be empty (nobody in the image).
Every field of a Pose is stored, so reading what was written gives the same Pose exactly; a pose without
parts is written without the `parts` key, as before parts existed; a person without a prompt is written
without `prompt`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedraw.errors import PoseFormatError
from posedraw.pose.core import MAX_PROMPT_CHARS, Part, Pose
from posedraw.pose.formats.fields import (
    ReadOptions,
    WriteOptions,
    as_dict,
    as_list,
    as_number,
    as_positive,
    fail,
    json_number,
    reject_unknown_keys,
)
from posedraw.pose.schema import JOINT_INDEX, JOINTS, NUM_JOINTS, PART_SIZES, PARTS, JointState

SCHEMA = "posedraw.pose/1"
_STATES = {s.name.lower(): s for s in JointState}


def looks_like(doc: Any) -> bool:
    return isinstance(doc, dict) and "schema" in doc


def _joint(value: Any, where: str) -> tuple[float, float, int, float | None]:
    joint = as_dict(value, where)
    reject_unknown_keys(joint, {"x", "y", "state", "confidence"}, where)
    state_name = joint.get("state", "visible")
    if not isinstance(state_name, str) or state_name not in _STATES:
        raise fail(f"{where}.state", "'visible', 'occluded' or 'absent'", state_name)
    state = _STATES[state_name]
    confidence = None if joint.get("confidence") is None else as_number(joint["confidence"], f"{where}.confidence")
    if confidence is not None and confidence < 0:
        raise fail(f"{where}.confidence", "a number >= 0", confidence)
    if state == JointState.ABSENT:
        return np.nan, np.nan, state, confidence
    return as_number(joint.get("x"), f"{where}.x"), as_number(joint.get("y"), f"{where}.y"), state, confidence


class _Points:
    """Positions, states and confidences of one group of one person while reading.

    Confidence is NaN where a listed point has none and 0 for points left out (absent).
    """

    def __init__(self, count: int) -> None:
        self.xy = np.full((count, 2), np.nan)
        self.state = np.zeros(count, dtype=np.int64)
        self.confidence = np.zeros(count)
        self.listed = np.zeros(count, dtype=bool)

    def set(self, k: int, entry: Any, where: str) -> None:
        x, y, self.state[k], conf = _joint(entry, where)
        self.xy[k] = (x, y)
        self.confidence[k] = np.nan if conf is None else conf
        self.listed[k] = True


def _body(value: Any, where: str) -> _Points:
    joints = as_dict(value, where)
    body = _Points(NUM_JOINTS)
    for name, entry in joints.items():
        if name not in JOINT_INDEX:
            raise fail(where, f"COCO joint names ({', '.join(JOINTS)}); unknown {name!r}", show_got=False)
        body.set(JOINT_INDEX[name], entry, f"{where}.{name}")
    return body


def _parts(value: Any, where: str) -> dict[str, _Points]:
    parts = {}
    for name, entries in as_dict(value, where).items():
        if name not in PARTS:
            raise fail(where, f"part names ({', '.join(PARTS)}); unknown {name!r}", show_got=False)
        entries = as_list(entries, f"{where}.{name}")
        if len(entries) not in PART_SIZES[name]:
            sizes = " or ".join(str(n) for n in PART_SIZES[name])
            raise fail(f"{where}.{name}", f"an array of {sizes} points", entries)
        parts[name] = _Points(len(entries))
        for k, entry in enumerate(entries):
            parts[name].set(k, entry, f"{where}.{name}[{k}]")
    return parts


def _prompt(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise fail(where, "a text (what to draw for this person)", value)
    if len(value) > MAX_PROMPT_CHARS:
        raise PoseFormatError(f"{where}: expected a text of at most {MAX_PROMPT_CHARS} characters, got {len(value)}")
    return value


def _person(value: Any, where: str) -> tuple[_Points, dict[str, _Points], str]:
    person = as_dict(value, where)
    reject_unknown_keys(person, {"joints", "parts", "prompt"}, where)
    parts = _parts(person["parts"], f"{where}.parts") if "parts" in person else {}
    prompt = _prompt(person["prompt"], f"{where}.prompt") if "prompt" in person else ""
    return _body(person.get("joints"), f"{where}.joints"), parts, prompt


def _confidence(groups: list[_Points], where: str) -> np.ndarray | None:
    confidence = np.stack([g.confidence for g in groups])
    has_conf = ~np.isnan(confidence[np.stack([g.listed for g in groups])])
    if has_conf.any() and not has_conf.all():
        raise fail(where, "a confidence on every listed point or on none", show_got=False)
    return confidence if has_conf.any() else None


def _part(name: str, people: list[dict[str, _Points]]) -> Part:
    counts = {len(p[name].state) for p in people if name in p}
    if len(counts) != 1:
        raise fail(f"people[].parts.{name}", "the same number of points for every person", show_got=False)
    count = counts.pop()
    groups = [p.get(name) or _Points(count) for p in people]
    xy, state = np.stack([g.xy for g in groups]), np.stack([g.state for g in groups])
    return Part(xy, state, _confidence(groups, f"people[].parts.{name}"))


def read(doc: Any, options: ReadOptions, notes: list[str]) -> Pose:
    doc = as_dict(doc, "document")
    if doc.get("schema") != SCHEMA:
        raise fail("schema", f"{SCHEMA!r}", doc.get("schema"))
    reject_unknown_keys(doc, {"schema", "canvas", "coordinates", "people", "meta"}, "document")
    canvas = as_dict(doc.get("canvas"), "canvas")
    width, height = as_positive(canvas.get("width"), "canvas.width"), as_positive(canvas.get("height"), "canvas.height")
    space = doc.get("coordinates", "pixels")
    if space not in ("pixels", "normalized"):
        raise fail("coordinates", "'pixels' or 'normalized'", space)
    people = [_person(p, f"people[{i}]") for i, p in enumerate(as_list(doc.get("people"), "people"))]
    bodies = [body for body, _, _ in people]
    part_lists = [parts for _, parts, _ in people]
    parts = {name: _part(name, part_lists) for name in PARTS if any(name in p for p in part_lists)}
    xy = np.stack([b.xy for b in bodies]) if bodies else np.zeros((0, NUM_JOINTS, 2))
    state = np.stack([b.state for b in bodies]) if bodies else np.zeros((0, NUM_JOINTS), dtype=np.int64)
    confidence = _confidence(bodies, "people[].joints") if bodies else None
    if space == "normalized":
        scale = np.array([width, height])
        xy = xy * scale
        parts = {name: part.replace(xy=part.xy * scale) for name, part in parts.items()}
    return Pose(xy, state, width, height, confidence, parts, tuple(prompt for _, _, prompt in people))


def _entry(xy: np.ndarray, state: int, confidence: float | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"state": JointState(state).name.lower()}
    if state != JointState.ABSENT:
        entry = {"x": float(xy[0]), "y": float(xy[1]), **entry}
    if confidence is not None:
        entry["confidence"] = float(confidence)
    return entry


def _entries(points: Pose | Part, p: int) -> list[dict[str, Any]]:
    conf = points.confidence
    return [
        _entry(points.xy[p, k], int(points.state[p, k]), None if conf is None else conf[p, k])
        for k in range(points.state.shape[1])
    ]


def write(pose: Pose, options: WriteOptions) -> dict[str, Any]:
    people = []
    for p in range(pose.num_people):
        person: dict[str, Any] = {"joints": dict(zip(JOINTS, _entries(pose, p)))}
        if pose.parts:
            person["parts"] = {name: _entries(part, p) for name, part in pose.parts.items()}
        if pose.prompt(p):
            person["prompt"] = pose.prompt(p)
        people.append(person)
    return {
        "schema": SCHEMA,
        "canvas": {"width": json_number(pose.width), "height": json_number(pose.height)},
        "coordinates": "pixels",
        "people": people,
    }


def left_out(pose: Pose, options: WriteOptions) -> list[str]:
    return []
