"""OpenPose JSON: `people[]` with `pose_keypoints_2d` as (x, y, confidence) triples, plus hands and face.

Read:
- the body in the 18-point COCO layout (with a neck) or BODY_25 (with a mid-hip and six foot points); the
  neck, mid-hip and feet become the Pose parts "torso" and "feet". 75 values whose triples 18..24 are all
  exactly zero are an 18-point layout padded with zeros (ComfyUI editors write those), unless the BODY_25
  reading is confirmed by its mid-hip lying at the midpoint of its hips (within a quarter of the hip width)
  or the format was named `openpose25`, which always reads 75 values as BODY_25;
- `hand_left_keypoints_2d` / `hand_right_keypoints_2d` (21 points) and `face_keypoints_2d` (68 points as
  DWPose writes, or 70 with the pupils as OpenPose writes) become the parts "left_hand", "right_hand", "face";
- any array may be flat or nested `[[x, y, c], ...]`, and `null` or `[]` (nobody's body, a missing hand);
- the ControlNet / webui variant adds `canvas_width` / `canvas_height` and may store coordinates
  normalized to 0..1; a ComfyUI POSE_KEYPOINT file is a JSON list of such documents, one per frame;
- a document whose `animals` list is not empty (ControlNet's animal pose) is refused; `"animals": []`,
  which ControlNet writes into every human pose file, is fine.
Plain OpenPose output has no canvas, so the caller must give one. Confidence 0 means the joint was not
found (absent).

Write: pixels with the canvas fields; the 18-point layout (`openpose`, what ControlNet reads) or BODY_25
(`openpose25`, with mid-hip and feet); hands and face when the pose has them. ControlNet keeps a keypoint
only if its confidence is >= 1.0, so every present joint is written with confidence 1.0 unless
`keep_confidence` asks for the raw values. The file's own neck (mid-hip) is written when the pose has one,
else the midpoint of the shoulders (hips). Absent joints are 0, 0, 0. OpenPose has no "occluded" state:
occluded joints are written as found.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedraw.pose.core import Part, Pose
from posedraw.pose.formats import keypoints
from posedraw.pose.formats.fields import (
    Coordinates,
    ReadOptions,
    WriteOptions,
    as_dict,
    as_list,
    as_positive,
    canvas_from,
    fail,
    json_number,
)
from posedraw.pose.schema import JOINT_INDEX, JOINTS, PART_SIZES, PARTS, JointState

# Joint names of the two OpenPose body layouts, in file order.
_COCO18 = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
           "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
           "right_eye", "left_eye", "right_ear", "left_ear")  # fmt: skip
_BODY25 = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
           "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
           "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
           "left_heel", "right_big_toe", "right_small_toe", "right_heel")  # fmt: skip
LAYOUTS: dict[int, tuple[str, ...]] = {len(_COCO18): _COCO18, len(_BODY25): _BODY25}
PART_KEYS: dict[str, str] = {
    "left_hand": "hand_left_keypoints_2d",
    "right_hand": "hand_right_keypoints_2d",
    "face": "face_keypoints_2d",
}
_BODY_KEYS = ("pose_keypoints_2d", "pose_keypoints")  # the second is OpenPose 1.0's name
_BODY_PARTS = (("torso", PARTS["torso"]), ("feet", PARTS["feet"]))  # parts the body layouts hold
_PART_WHAT = {"left_hand": "a hand", "right_hand": "a hand", "face": "a face"}
_MIN_CONFIDENCE = 1e-6
_HIP_TOLERANCE = 0.25  # BODY_25 confirmed: mid-hip within this fraction of the hip width of the hips' midpoint
_NORMALIZED_RANGE = (-0.5, 1.5)  # with canvas fields: all coordinates in here means fractions of the canvas


def looks_like(doc: Any) -> bool:
    if isinstance(doc, list):
        return bool(doc) and all(_looks_like_frame(frame) for frame in doc)
    return _looks_like_frame(doc)


def _looks_like_frame(doc: Any) -> bool:
    return isinstance(doc, dict) and ("people" in doc or "animals" in doc)


def resolve_coordinates(coords: np.ndarray, options: ReadOptions, canvas_in_file: bool, where: str) -> Coordinates:
    """Decide pixel vs normalized coordinates without guessing silently.

    An explicit option decides. With canvas fields, coordinates that all lie within [-0.5, 1.5] are the
    webui's normalized form (a hand slightly off the canvas stays normalized; a whole person inside one
    or two pixels is not a pose); any other value means pixels. Without canvas fields any value above 1
    can only be pixels, and if every value lies in 0..1 the reader cannot tell and asks for the option.
    """
    if options.coordinates is not None:
        return options.coordinates
    if coords.size == 0:
        return "pixels"
    if canvas_in_file:
        low, high = _NORMALIZED_RANGE
        return "normalized" if coords.min() >= low and coords.max() <= high else "pixels"
    if np.abs(coords).max() > 1.0:
        return "pixels"
    raise fail(
        where,
        "a stated coordinate space: all coordinates lie in 0..1 and there are no canvas fields; "
        "pass --coords normalized (or --coords pixels)",
        show_got=False,
    )


# --- reading ----------------------------------------------------------------------------------------------
def _frame(doc: Any, options: ReadOptions, notes: list[str]) -> tuple[dict[str, Any], str]:
    """The document to read and the prefix of its field names: one frame of a ComfyUI list, or the doc."""
    if not isinstance(doc, list):
        if options.frame not in (None, 0):
            raise fail("frame", "0: this file holds one frame (not a ComfyUI frame list)", options.frame)
        return as_dict(doc, "document"), ""
    if not doc:
        raise fail("document", "at least one frame", doc)
    index = 0 if options.frame is None else options.frame
    if not 0 <= index < len(doc):
        raise fail("frame", f"a frame number from 0 to {len(doc) - 1} (the file holds {len(doc)})", index)
    if options.frame is None and len(doc) > 1:
        notes.append(f"holds {len(doc)} frames; read frame 0 (choose another with --frame N)")
    return as_dict(doc[index], f"[{index}]"), f"[{index}]."


def _refuse_animals(frame: dict[str, Any], prefix: str) -> None:
    """ControlNet's animal preprocessor writes `animals` (and no `people`); human files carry `"animals": []`."""
    animals = frame.get("animals")
    if animals is None or (animals == [] and "people" in frame):
        return
    raise fail(
        f"{prefix}animals",
        "human poses under 'people'; this is an animal pose file (ControlNet's animal preprocessor, AP-10K "
        "keypoints), which posedraw cannot read",
        show_got=False,
    )


def _stored_canvas(doc: dict[str, Any], prefix: str) -> tuple[float, float] | None:
    has_w, has_h = "canvas_width" in doc, "canvas_height" in doc
    if has_w != has_h:
        missing = "canvas_height" if has_w else "canvas_width"
        raise fail(prefix + missing, "both canvas_width and canvas_height, or neither", show_got=False)
    if not has_w:
        return None
    return (
        as_positive(doc["canvas_width"], prefix + "canvas_width"),
        as_positive(doc["canvas_height"], prefix + "canvas_height"),
    )


def _confirms_body25(rows: np.ndarray) -> bool:
    """BODY_25's mid-hip is found and lies at the midpoint of its found hips."""
    mid, right, left = (rows[_BODY25.index(name)] for name in ("mid_hip", "right_hip", "left_hip"))
    if min(mid[2], right[2], left[2]) <= 0:
        return False
    gap = np.linalg.norm(mid[:2] - (right[:2] + left[:2]) / 2.0)
    return bool(gap <= _HIP_TOLERANCE * np.linalg.norm(right[:2] - left[:2]))


def _layout(rows: np.ndarray, body25: bool) -> tuple[tuple[str, ...], bool]:
    """The layout of a person's rows, and whether they were an 18-point layout padded to 75 values.

    `body25` (the format was named openpose25) reads 75 values as BODY_25 whatever they hold.
    """
    if len(rows) == len(_COCO18):
        return _COCO18, False
    if not body25 and not rows[len(_COCO18) :].any() and not _confirms_body25(rows):
        return _COCO18, True
    return _BODY25, False


def _pick(rows: np.ndarray, layout: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray | None:
    """Rows of `names` (zeros for names the layout lacks); None when it has none of them."""
    if not any(name in layout for name in names):
        return None
    return np.array([rows[layout.index(n)] if n in layout else np.zeros(3) for n in names])


def _person(value: Any, where: str, body25: bool) -> tuple[dict[str, np.ndarray | None], bool]:
    """(K, 3) rows of the body and each part of one person (None: not in the file), and the padding flag."""
    person = as_dict(value, where)
    key = next((k for k in _BODY_KEYS if k in person), None)
    if key is None and not any(k in person for k in PART_KEYS.values()):
        raise fail(f"{where}.pose_keypoints_2d", "an array of keypoint triples", show_got=False)
    rows = None
    if key is not None:
        rows = keypoints.triples(person[key], f"{where}.{key}", tuple(LAYOUTS), "the COCO-18 or BODY_25 layout")
    groups: dict[str, np.ndarray | None] = {"body": None, "torso": None, "feet": None}
    padded = False
    if rows is not None:
        layout, padded = _layout(rows, body25)
        groups = {name: _pick(rows, layout, points) for name, points in (("body", JOINTS), *_BODY_PARTS)}
    for name, part_key in PART_KEYS.items():
        where_part = f"{where}.{part_key}"
        groups[name] = keypoints.triples(person.get(part_key), where_part, PART_SIZES[name], _PART_WHAT[name])
    return groups, padded


def _stacked(rows: list[np.ndarray | None], count: int | None = None) -> np.ndarray | None:
    """(P, K, 3) rows of every person (zeros for people without them); None if nobody has any."""
    if count is None:
        if all(r is None for r in rows):
            return None
        count = max(len(r) for r in rows if r is not None)
    filled = [np.zeros((count, 3)) if r is None else np.pad(r, ((0, count - len(r)), (0, 0))) for r in rows]
    return np.stack(filled) if filled else np.zeros((0, count, 3))


def _points(rows: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    found = rows[..., 2] > 0
    state = np.where(found, JointState.VISIBLE, JointState.ABSENT)
    return {"xy": rows[..., :2] * scale, "state": state, "confidence": np.where(found, rows[..., 2], 0.0)}


def read(doc: Any, options: ReadOptions, notes: list[str], body25: bool = False) -> Pose:
    frame, prefix = _frame(doc, options, notes)
    _refuse_animals(frame, prefix)
    people = as_list(frame.get("people"), f"{prefix}people")
    persons = [_person(p, f"{prefix}people[{i}]", body25) for i, p in enumerate(people)]
    padded = sum(flag for _, flag in persons)
    if padded:
        notes.append(
            f"has {padded} of {len(persons)} people in 75 values read as the 18-point layout padded with zeros "
            "(triples 18..24 are all zero and no BODY_25 mid-hip lies between the hips; "
            "--from openpose25 reads them as BODY_25)"
        )
    stored = _stored_canvas(frame, prefix)
    width, height = canvas_from(options, stored, f"{prefix}canvas_width", "pass --canvas WIDTHxHEIGHT")
    body = _stacked([groups["body"] for groups, _ in persons], len(JOINTS))
    parts = {name: _stacked([groups[name] for groups, _ in persons]) for name in PARTS}
    kept = {name: rows for name, rows in parts.items() if rows is not None and (rows[..., 2] > 0).any()}
    found = np.concatenate([rows[..., :2][rows[..., 2] > 0] for rows in (body, *kept.values())])  # type: ignore[misc]
    space = resolve_coordinates(found, options, stored is not None, f"{prefix}people")
    scale = np.array([width, height]) if space == "normalized" else np.ones(2)
    return Pose(
        **_points(body, scale),  # type: ignore[arg-type]
        width=width,
        height=height,
        parts={name: Part(**_points(rows, scale)) for name, rows in kept.items()},
    )


def read_body25(doc: Any, options: ReadOptions, notes: list[str]) -> Pose:
    """Read as `read` does, but 75 values are always BODY_25 (never a padded 18-point layout)."""
    return read(doc, options, notes, body25=True)


# --- writing ----------------------------------------------------------------------------------------------
def _triple(xy: np.ndarray, state: int, confidence: float | None, options: WriteOptions) -> list[float]:
    if state == JointState.ABSENT:
        return [0.0, 0.0, 0.0]
    c = 1.0 if confidence is None or not options.keep_confidence else max(float(confidence), _MIN_CONFIDENCE)
    return [float(xy[0]), float(xy[1]), c]


def _rows(points: Pose | Part, p: int, options: WriteOptions) -> list[list[float]]:
    conf = points.confidence
    return [
        _triple(points.xy[p, k], int(points.state[p, k]), None if conf is None else conf[p, k], options)
        for k in range(points.state.shape[1])
    ]


def _midpoint(pose: Pose, p: int, a: str, b: str) -> list[float]:
    """Where OpenPose puts a derived neck (mid-hip): between two body joints, when both are present."""
    i, j = JOINT_INDEX[a], JOINT_INDEX[b]
    if pose.present[p, i] and pose.present[p, j]:
        x, y = (pose.xy[p, i] + pose.xy[p, j]) / 2.0
        return [float(x), float(y), 1.0]
    return [0.0, 0.0, 0.0]


def _named_rows(pose: Pose, p: int, options: WriteOptions) -> dict[str, list[float]]:
    """Every body-layout point the pose can give for person p, by name."""
    named = dict(zip(JOINTS, _rows(pose, p, options)))
    for name in ("torso", "feet"):
        if name in pose.parts:
            named.update(zip(PARTS[name], _rows(pose.parts[name], p, options)))
    for name, (a, b) in (("neck", ("left_shoulder", "right_shoulder")), ("mid_hip", ("left_hip", "right_hip"))):
        if not named.get(name, [0.0, 0.0, 0.0])[2]:
            named[name] = _midpoint(pose, p, a, b)
    return named


def _person_doc(pose: Pose, p: int, options: WriteOptions, layout: tuple[str, ...]) -> dict[str, Any]:
    named = _named_rows(pose, p, options)
    person: dict[str, Any] = {
        "person_id": [-1],
        "pose_keypoints_2d": [v for name in layout for v in named.get(name, [0.0, 0.0, 0.0])],
    }
    for name, key in PART_KEYS.items():
        if name in pose.parts:
            person[key] = [v for row in _rows(pose.parts[name], p, options) for v in row]
    return person


def write(pose: Pose, options: WriteOptions, layout: tuple[str, ...] = _COCO18) -> dict[str, Any]:
    return {
        "version": 1.3,
        "canvas_width": json_number(pose.width),
        "canvas_height": json_number(pose.height),
        "people": [_person_doc(pose, p, options, layout) for p in range(pose.num_people)],
    }


def write_body25(pose: Pose, options: WriteOptions) -> dict[str, Any]:
    return write(pose, options, _BODY25)


_WHY = {
    "mid-hip": "the openpose25 format keeps it",
    "feet": "the openpose25 format keeps them",
    "occluded states": "written as visible",
    "confidences": "written as 1.0 so that ControlNet keeps every joint; --keep-confidence writes them",
}


def left_out(pose: Pose, options: WriteOptions) -> list[str]:
    holds = {"neck", "hands", "face", "pupils"} | ({"confidences"} if options.keep_confidence else set())
    return keypoints.left_out(pose, holds, _WHY)


def left_out_body25(pose: Pose, options: WriteOptions) -> list[str]:
    holds = {"neck", "mid-hip", "feet", "hands", "face", "pupils"}
    return keypoints.left_out(pose, holds | ({"confidences"} if options.keep_confidence else set()), _WHY)
