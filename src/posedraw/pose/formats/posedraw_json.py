"""posedraw's own pose JSON, schema `posedraw.pose/1`: explicit canvas, coordinate space and states.

    {
      "schema": "posedraw.pose/1",
      "canvas": {"width": 512, "height": 768},
      "coordinates": "pixels",            # or "normalized": fractions of width / height
      "people": [
        {"joints": {"nose": {"x": 251.5, "y": 80.0, "state": "visible", "confidence": 0.98},
                    "left_eye": {"state": "absent"}, ...}}
      ],
      "meta": {...}                       # optional, free-form, ignored by the reader
    }

Pixels: x right, y down, origin at the top-left corner of the canvas. A joint left out of `joints` is
absent. Every field of a Pose is stored, so reading what was written gives the same Pose exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedraw.pose.core import Pose
from posedraw.pose.formats.fields import (
    ReadOptions,
    as_dict,
    as_list,
    as_number,
    as_positive,
    fail,
    json_number,
    reject_unknown_keys,
)
from posedraw.pose.schema import JOINT_INDEX, JOINTS, NUM_JOINTS, JointState

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


def _person(value: Any, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions, states and confidences of one person; confidence is NaN where a listed joint has none
    and 0 for joints left out (absent)."""
    person = as_dict(value, where)
    reject_unknown_keys(person, {"joints"}, where)
    joints = as_dict(person.get("joints"), f"{where}.joints")
    xy = np.full((NUM_JOINTS, 2), np.nan)
    state = np.zeros(NUM_JOINTS, dtype=np.int64)
    confidence = np.zeros(NUM_JOINTS)
    listed = np.zeros(NUM_JOINTS, dtype=bool)
    for name, entry in joints.items():
        if name not in JOINT_INDEX:
            raise fail(f"{where}.joints", f"COCO joint names ({', '.join(JOINTS)}); unknown {name!r}", show_got=False)
        j = JOINT_INDEX[name]
        x, y, state[j], conf = _joint(entry, f"{where}.joints.{name}")
        xy[j] = (x, y)
        confidence[j] = np.nan if conf is None else conf
        listed[j] = True
    return xy, state, confidence, listed


def read(doc: Any, options: ReadOptions) -> Pose:
    doc = as_dict(doc, "document")
    if doc.get("schema") != SCHEMA:
        raise fail("schema", f"{SCHEMA!r}", doc.get("schema"))
    reject_unknown_keys(doc, {"schema", "canvas", "coordinates", "people", "meta"}, "document")
    canvas = as_dict(doc.get("canvas"), "canvas")
    width, height = as_positive(canvas.get("width"), "canvas.width"), as_positive(canvas.get("height"), "canvas.height")
    space = doc.get("coordinates", "pixels")
    if space not in ("pixels", "normalized"):
        raise fail("coordinates", "'pixels' or 'normalized'", space)
    people = as_list(doc.get("people"), "people")
    if not people:
        raise fail("people", "at least one person", people)
    parsed = [_person(p, f"people[{i}]") for i, p in enumerate(people)]
    xy, state, confidence, listed = (np.stack(a) for a in zip(*parsed))
    if space == "normalized":
        xy = xy * np.array([width, height])
    has_conf = ~np.isnan(confidence[listed])
    if has_conf.any() and not has_conf.all():
        raise fail("people[].joints", "a confidence on every listed joint or on none", show_got=False)
    return Pose(xy, state, width, height, confidence if has_conf.any() else None)


def write(pose: Pose) -> dict[str, Any]:
    people = []
    for p in range(pose.num_people):
        joints: dict[str, Any] = {}
        for j, name in enumerate(JOINTS):
            state = JointState(int(pose.state[p, j]))
            entry: dict[str, Any] = {"state": state.name.lower()}
            if state != JointState.ABSENT:
                entry = {"x": float(pose.xy[p, j, 0]), "y": float(pose.xy[p, j, 1]), **entry}
            if pose.confidence is not None:
                entry["confidence"] = float(pose.confidence[p, j])
            joints[name] = entry
        people.append({"joints": joints})
    return {
        "schema": SCHEMA,
        "canvas": {"width": json_number(pose.width), "height": json_number(pose.height)},
        "coordinates": "pixels",
        "people": people,
    }
