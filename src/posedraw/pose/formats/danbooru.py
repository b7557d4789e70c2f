"""The original system's keypoint files: `{joint_name: [row, col]}` in a 512 x 512 canvas.

The first value is the vertical coordinate (growing downwards), the second the horizontal one; joint
names are `eye_left`-style. No visibility or confidence is stored: every listed joint is visible, a
joint that is not listed is absent. The canvas is always 512 x 512; writing needs a square pose, which
is scaled to it. Nothing else of a pose (parts, occluded states, confidences) fits in the format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedraw.pose.core import Pose
from posedraw.pose.formats import keypoints
from posedraw.pose.formats.fields import ReadOptions, WriteOptions, as_dict, fail, numbers
from posedraw.pose.schema import JOINTS, NUM_JOINTS, JointState

CANVAS = 512.0


def _file_name(joint: str) -> str:
    """COCO 'left_eye' -> the file's 'eye_left'."""
    for side in ("left", "right"):
        if joint.startswith(side + "_"):
            return joint[len(side) + 1 :] + "_" + side
    return joint


FILE_NAMES: tuple[str, ...] = tuple(_file_name(j) for j in JOINTS)
_INDEX = {name: i for i, name in enumerate(FILE_NAMES)}


def looks_like(doc: Any) -> bool:
    return isinstance(doc, dict) and bool(doc) and any(k in _INDEX for k in doc)


def read(doc: Any, options: ReadOptions, notes: list[str]) -> Pose:
    doc = as_dict(doc, "document")
    if not doc:
        raise fail("document", "at least one joint, as {joint_name: [row, col]}", doc)
    xy = np.zeros((1, NUM_JOINTS, 2))
    state = np.full((1, NUM_JOINTS), JointState.ABSENT)
    for name, value in doc.items():
        if name not in _INDEX:
            raise fail(repr(name), f"a joint name, one of {', '.join(FILE_NAMES)}", show_got=False)
        row, col = numbers(value, name, (2,))
        xy[0, _INDEX[name]] = (col, row)
        state[0, _INDEX[name]] = JointState.VISIBLE
    return Pose(xy, state, CANVAS, CANVAS)


def write(pose: Pose, options: WriteOptions) -> dict[str, Any]:
    if pose.num_people != 1:
        raise fail("pose", f"exactly one person for the danbooru format, found {pose.num_people}", show_got=False)
    if pose.width != pose.height:
        raise fail(
            "canvas",
            f"a square canvas for the danbooru format (512 x 512), got {pose.width:g} x {pose.height:g}; "
            "pad it first (posedraw pose convert --pad-square)",
            show_got=False,
        )
    if not pose.present.any():
        raise fail("pose", "at least one joint with a position (the danbooru format cannot store none)", show_got=False)
    scale = CANVAS / pose.width
    return {
        FILE_NAMES[j]: [float(pose.xy[0, j, 1] * scale), float(pose.xy[0, j, 0] * scale)]
        for j in range(NUM_JOINTS)
        if pose.present[0, j]
    }


def left_out(pose: Pose, options: WriteOptions) -> list[str]:
    return keypoints.left_out(pose, set(), {"occluded states": "written as visible"})
