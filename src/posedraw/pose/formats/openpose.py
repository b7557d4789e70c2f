"""OpenPose JSON: `people[].pose_keypoints_2d` as flat (x, y, confidence) triples.

Read: the 18-point COCO layout (with a neck) and BODY_25; the ControlNet / webui variant adds
`canvas_width` / `canvas_height` and may store coordinates normalized to 0..1. Plain OpenPose output has
no canvas, so the caller must give one. Confidence 0 means the joint was not found (absent).
Write: the 18-point layout in pixels with the canvas fields; the neck is derived from the shoulders.
OpenPose has no "occluded" state: occluded joints are written as found.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedraw.pose.core import Pose
from posedraw.pose.formats.fields import (
    Coordinates,
    ReadOptions,
    as_dict,
    as_list,
    as_positive,
    canvas_from,
    fail,
    json_number,
    numbers,
)
from posedraw.pose.schema import JOINT_INDEX, NUM_JOINTS, JointState

# Index of each COCO joint in the two OpenPose layouts.
_COCO18 = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
           "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
           "right_eye", "left_eye", "right_ear", "left_ear")  # fmt: skip
_BODY25 = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
           "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
           "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
           "left_heel", "right_big_toe", "right_small_toe", "right_heel")  # fmt: skip
LAYOUTS: dict[int, tuple[str, ...]] = {len(_COCO18): _COCO18, len(_BODY25): _BODY25}
_MIN_CONFIDENCE = 1e-6


def _source_indices(layout: tuple[str, ...]) -> np.ndarray:
    return np.array([layout.index(name) for name in JOINT_INDEX], dtype=np.int64)


def looks_like(doc: Any) -> bool:
    return isinstance(doc, dict) and "people" in doc


def resolve_coordinates(coords: np.ndarray, options: ReadOptions, canvas_in_file: bool, where: str) -> Coordinates:
    """Decide pixel vs normalized coordinates without guessing silently.

    An explicit option decides. Any value above 1 can only be pixels. If every value lies in 0..1, a
    document with canvas fields is the webui's normalized form (a whole person inside one pixel is not
    a pose); without canvas fields the reader cannot tell and asks for the option.
    """
    if options.coordinates is not None:
        return options.coordinates
    if coords.size == 0 or np.abs(coords).max() > 1.0:
        return "pixels"
    if canvas_in_file:
        return "normalized"
    raise fail(
        where,
        "a stated coordinate space: all coordinates lie in 0..1 and there are no canvas fields; "
        "pass --coords normalized (or --coords pixels)",
        show_got=False,
    )


def _stored_canvas(doc: dict[str, Any]) -> tuple[float, float] | None:
    has_w, has_h = "canvas_width" in doc, "canvas_height" in doc
    if has_w != has_h:
        missing = "canvas_height" if has_w else "canvas_width"
        raise fail(missing, "both canvas_width and canvas_height, or neither", show_got=False)
    if not has_w:
        return None
    return as_positive(doc["canvas_width"], "canvas_width"), as_positive(doc["canvas_height"], "canvas_height")


def _person_triples(person: Any, where: str) -> np.ndarray:
    person = as_dict(person, where)
    key = "pose_keypoints_2d" if "pose_keypoints_2d" in person else "pose_keypoints"
    if key not in person:
        raise fail(f"{where}.pose_keypoints_2d", "an array of keypoint triples", show_got=False)
    lengths = tuple(3 * n for n in LAYOUTS)
    flat = numbers(person[key], f"{where}.{key}", lengths)
    triples = np.array(flat, dtype=np.float64).reshape(-1, 3)
    if (triples[:, 2] < 0).any():
        raise fail(f"{where}.{key}", "confidences >= 0 (every third value)", show_got=False)
    return triples[_source_indices(LAYOUTS[len(triples)])]


def read(doc: Any, options: ReadOptions) -> Pose:
    doc = as_dict(doc, "document")
    people = as_list(doc.get("people"), "people")
    if not people:
        raise fail("people", "at least one person", people)
    triples = np.stack([_person_triples(p, f"people[{i}]") for i, p in enumerate(people)])
    stored = _stored_canvas(doc)
    width, height = canvas_from(options, stored, "canvas_width", "pass --canvas WIDTHxHEIGHT")
    found = triples[..., 2] > 0
    xy = triples[..., :2].copy()
    space = resolve_coordinates(xy[found], options, stored is not None, "people")
    if space == "normalized":
        xy *= np.array([width, height])
    state = np.where(found, JointState.VISIBLE, JointState.ABSENT)
    return Pose(xy, state, width, height, confidence=np.where(found, triples[..., 2], 0.0))


def _neck(xy: np.ndarray, present: np.ndarray) -> tuple[float, float, float]:
    left, right = JOINT_INDEX["left_shoulder"], JOINT_INDEX["right_shoulder"]
    if present[left] and present[right]:
        x, y = (xy[left] + xy[right]) / 2.0
        return float(x), float(y), 1.0
    return 0.0, 0.0, 0.0


def write(pose: Pose, normalized: bool = False) -> dict[str, Any]:
    scale = np.array([pose.width, pose.height]) if normalized else np.ones(2)
    people = []
    for p in range(pose.num_people):
        present = pose.present[p]
        conf = np.ones(NUM_JOINTS) if pose.confidence is None else pose.confidence[p]
        flat: list[float] = []
        for name in _COCO18:
            if name == "neck":
                x, y, c = _neck(pose.xy[p], present)
                flat += [x / scale[0], y / scale[1], c]
                continue
            j = JOINT_INDEX[name]
            if present[j]:
                # a found joint needs a positive confidence, or readers take it as not found
                c = max(float(conf[j]), _MIN_CONFIDENCE)
                flat += [float(pose.xy[p, j, 0] / scale[0]), float(pose.xy[p, j, 1] / scale[1]), c]
            else:
                flat += [0.0, 0.0, 0.0]
        people.append({"person_id": [-1], "pose_keypoints_2d": flat})
    return {
        "version": 1.3,
        "canvas_width": json_number(pose.width),
        "canvas_height": json_number(pose.height),
        "people": people,
    }
