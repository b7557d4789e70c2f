"""COCO keypoints: annotation files (`annotations[].keypoints` as x, y, v) and result files (x, y, score),
with the COCO-WholeBody parts.

A COCO file may describe many images; a Pose is one canvas, so the reader takes the image chosen by
`ReadOptions.image_id` (or the only one). v = 0/1/2 maps exactly onto absent/occluded/visible. A file
whose annotation list is empty is an image with nobody in it (0 people).
COCO-WholeBody adds `foot_kpts` (6 points), `face_kpts` (68), `lefthand_kpts` and `righthand_kpts` (21)
next to the 17 body `keypoints`, and `*_valid` flags (false: the part is absent). Its hands and feet carry
scores in 0..1 where the body has flags, so a part whose third values are not all 0, 1 or 2 is read as
scores: > 0 is present (visible), and the score becomes the point's confidence.
Only people are read: an annotation whose category names keypoints other than COCO's 17 person joints
(an animal pose such as AP-10K) is refused. Files without categories are people.
Results carry no canvas and no visibility: the canvas must be given, a score > 0 means the joint is
present, and the score becomes its confidence (parts too, under the COCO-WholeBody names, as mmpose
writes them). The writer produces an annotation file, with the COCO-WholeBody fields when the pose has
feet, hands or face (a 70-point face loses its pupils); confidences, the neck and the mid-hip are not
part of the format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedraw.pose.core import Part, Pose
from posedraw.pose.formats import keypoints
from posedraw.pose.formats.fields import (
    ReadOptions,
    WriteOptions,
    as_dict,
    as_list,
    as_positive,
    canvas_from,
    describe,
    fail,
    json_number,
)
from posedraw.pose.schema import JOINTS, LIMB_INDICES, NUM_JOINTS, PART_SIZES, JointState

# COCO-WholeBody's field of each part, its validity flag, its box (feet have none) and its point count.
WHOLEBODY_KEYS: dict[str, str] = {
    "feet": "foot_kpts",
    "face": "face_kpts",
    "left_hand": "lefthand_kpts",
    "right_hand": "righthand_kpts",
}
_VALID_KEYS = {
    "feet": "foot_valid",
    "face": "face_valid",
    "left_hand": "lefthand_valid",
    "right_hand": "righthand_valid",
}
_BOX_KEYS = {"face": "face_box", "left_hand": "lefthand_box", "right_hand": "righthand_box"}
_WHOLEBODY_COUNTS = {"feet": 6, "face": 68, "left_hand": 21, "right_hand": 21}
_WHAT = {"feet": "six foot points", "face": "a face", "left_hand": "a hand", "right_hand": "a hand"}
_FLAGS = (0, 1, 2)


def looks_like(doc: Any) -> bool:
    return (isinstance(doc, dict) and "annotations" in doc) or looks_like_results(doc)


def looks_like_results(doc: Any) -> bool:
    return isinstance(doc, list) and bool(doc) and all(isinstance(d, dict) and "keypoints" in d for d in doc)


def _image_key(value: Any, where: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise fail(where, "an image id (integer or string)", value)
    return value


def _choose_image(ids: list[int | str], options: ReadOptions, where: str) -> int | str:
    unique = list(dict.fromkeys(ids))
    if options.image_id is not None:
        wanted = [i for i in unique if str(i) == str(options.image_id)]
        if not wanted:
            raise fail(where, f"an entry for image id {options.image_id!r}", show_got=False)
        return wanted[0]
    if len(unique) != 1:
        raise fail(where, f"keypoints of one image, found {len(unique)}; choose one with --image-id", show_got=False)
    return unique[0]


def _is_person(names: list[Any]) -> bool:
    """Keypoint names of a person category: COCO's 17 joints first (COCO-WholeBody may list more after)."""
    spelled = [str(n).lower().replace("-", "_").replace(" ", "_") for n in names[:NUM_JOINTS]]
    return spelled == list(JOINTS)


def _refuse_animals(doc: dict[str, Any], entries: list[tuple[int, dict[str, Any]]]) -> None:
    categories = [c for c in as_list(doc.get("categories", []), "categories") if isinstance(c, dict)]
    by_id = {c["id"]: c for c in categories if isinstance(c.get("id"), (int, str))}
    for i, entry in entries:
        key = entry.get("category_id")
        category = by_id.get(key, {}) if isinstance(key, (int, str)) else {}
        names = category.get("keypoints")
        if isinstance(names, list) and not _is_person(names):
            shown = ", ".join(repr(str(n)) for n in names[:4]) + (", ..." if len(names) > 4 else "")
            raise fail(
                f"annotations[{i}]",
                f"a person (keypoints named as COCO's 17 person joints); its category {describe(category.get('name'))} "
                f"has keypoints {shown}: an animal pose such as AP-10K, which posedraw cannot read",
                show_got=False,
            )


def _entry_rows(entry: dict[str, Any], where: str) -> dict[str, np.ndarray | None]:
    """(K, 3) rows of the body and of each COCO-WholeBody part of one annotation (None: not there)."""
    rows = {
        "body": keypoints.triples(
            entry["keypoints"], f"{where}.keypoints", (NUM_JOINTS,), "COCO's 17 joints", "third values"
        )
    }
    for name, key in WHOLEBODY_KEYS.items():
        valid = entry.get(_VALID_KEYS[name], True)
        if isinstance(valid, (bool, int)) and not valid:
            rows[name] = None
            continue
        rows[name] = keypoints.triples(entry.get(key), f"{where}.{key}", PART_SIZES[name], _WHAT[name], "third values")
    return rows


def _stacked(rows: list[np.ndarray | None], count: int) -> np.ndarray:
    filled = [np.zeros((count, 3)) if r is None else np.pad(r, ((0, count - len(r)), (0, 0))) for r in rows]
    return np.stack(filled) if filled else np.zeros((0, count, 3))


def _scored(rows: np.ndarray) -> dict[str, np.ndarray]:
    found = rows[..., 2] > 0
    state = np.where(found, JointState.VISIBLE, JointState.ABSENT)
    return {"xy": rows[..., :2], "state": state, "confidence": np.where(found, rows[..., 2], 0.0)}


def _flagged(rows: np.ndarray) -> dict[str, np.ndarray]:
    return {"xy": rows[..., :2], "state": rows[..., 2].astype(np.int64)}


def _parts(people: list[dict[str, np.ndarray | None]], scores: bool) -> dict[str, Part]:
    """Parts with a present point; flags when all third values are 0/1/2 (and not `scores`), else scores."""
    parts = {}
    for name in WHOLEBODY_KEYS:
        given = [p[name] for p in people if p[name] is not None]
        if not given:
            continue
        rows = _stacked([p[name] for p in people], max(len(r) for r in given))
        if (rows[..., 2] > 0).any():
            as_flags = not scores and bool(np.isin(rows[..., 2], _FLAGS).all())
            parts[name] = Part(**(_flagged(rows) if as_flags else _scored(rows)))
    return parts


def _read_annotations(doc: dict[str, Any], options: ReadOptions) -> Pose:
    annotations = [
        as_dict(a, f"annotations[{i}]") for i, a in enumerate(as_list(doc.get("annotations"), "annotations"))
    ]
    entries = [(i, a) for i, a in enumerate(annotations) if "keypoints" in a]
    if annotations and not entries:
        raise fail("annotations", "at least one annotation with keypoints", show_got=False)
    _refuse_animals(doc, entries)
    ids = [_image_key(a.get("image_id"), f"annotations[{i}].image_id") for i, a in entries]
    image_id = _choose_image(ids, options, "annotations") if entries else _empty_image(doc, options)
    people = [_entry_rows(a, f"annotations[{i}]") for (i, a), key in zip(entries, ids) if key == image_id]
    body = _stacked([p["body"] for p in people], NUM_JOINTS)
    if not np.isin(body[..., 2], _FLAGS).all():
        raise fail("annotations[].keypoints", "visibility flags v of 0, 1 or 2 (every third value)", show_got=False)
    width, height = canvas_from(options, _image_canvas(doc, image_id), "images", "pass --canvas WIDTHxHEIGHT")
    return Pose(**_flagged(body), width=width, height=height, parts=_parts(people, scores=False))


def _empty_image(doc: dict[str, Any], options: ReadOptions) -> int | str:
    """The image of a file with nobody in it (an empty annotation list): its `images` entry gives the canvas."""
    images = as_list(doc.get("images", []), "images")
    ids = [_image_key(as_dict(image, f"images[{i}]").get("id"), f"images[{i}].id") for i, image in enumerate(images)]
    if not ids:
        raise fail("annotations", "at least one annotation with keypoints, or an image to hold nobody", show_got=False)
    return _choose_image(ids, options, "images")


def _image_canvas(doc: dict[str, Any], image_id: int | str) -> tuple[float, float] | None:
    for i, image in enumerate(as_list(doc.get("images", []), "images")):
        image = as_dict(image, f"images[{i}]")
        if image.get("id") == image_id:
            return as_positive(image.get("width"), f"images[{i}].width"), as_positive(
                image.get("height"), f"images[{i}].height"
            )
    return None


def _read_results(doc: list[Any], options: ReadOptions) -> Pose:
    ids = [_image_key(as_dict(r, f"[{i}]").get("image_id"), f"[{i}].image_id") for i, r in enumerate(doc)]
    image_id = _choose_image(ids, options, "results")
    people = [_entry_rows(r, f"[{i}]") for i, (r, key) in enumerate(zip(doc, ids)) if key == image_id]
    width, height = canvas_from(options, None, "results", "pass --canvas WIDTHxHEIGHT")
    body = _stacked([p["body"] for p in people], NUM_JOINTS)
    return Pose(**_scored(body), width=width, height=height, parts=_parts(people, scores=True))


def read(doc: Any, options: ReadOptions, notes: list[str]) -> Pose:
    if looks_like_results(doc):
        return _read_results(doc, options)
    return _read_annotations(as_dict(doc, "document"), options)


# --- writing ----------------------------------------------------------------------------------------------
def _flat(xy: np.ndarray, state: np.ndarray) -> list[int | float]:
    """x, y, v of each point (0, 0, 0 for absent ones); flags as JSON integers."""
    present = state != JointState.ABSENT
    xy = np.where(present[:, None], xy, 0.0)
    return [v for (x, y), s in zip(xy, state) for v in (float(x), float(y), int(s))]


def _wholebody(pose: Pose, p: int) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, key in WHOLEBODY_KEYS.items():
        count = _WHOLEBODY_COUNTS[name]
        part = pose.parts.get(name) or Part.absent(pose.num_people, count)
        xy, state = part.xy[p, :count], part.state[p, :count]
        fields[key] = _flat(xy, state)
        fields[_VALID_KEYS[name]] = bool((state != JointState.ABSENT).any())
        if name in _BOX_KEYS:
            fields[_BOX_KEYS[name]] = _bbox(xy[state != JointState.ABSENT])
    return fields


def write(pose: Pose, options: WriteOptions, image_id: int | str = 1) -> dict[str, Any]:
    wholebody = any(name in pose.parts for name in WHOLEBODY_KEYS)
    annotations = []
    for p in range(pose.num_people):
        annotations.append(
            {
                "id": p + 1,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "num_keypoints": int(pose.present[p].sum()),
                "bbox": _bbox(pose.xy[p][pose.present[p]]),
                "keypoints": _flat(pose.xy[p], pose.state[p]),
                **(_wholebody(pose, p) if wholebody else {}),
            }
        )
    return {
        "images": [{"id": image_id, "width": json_number(pose.width), "height": json_number(pose.height)}],
        "annotations": annotations,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(JOINTS),
                "skeleton": [[int(a) + 1, int(b) + 1] for a, b in LIMB_INDICES],
            }
        ],
    }


def left_out(pose: Pose, options: WriteOptions) -> list[str]:
    why = {"pupils": "COCO-WholeBody faces have 68 points", "confidences": "COCO annotations store visibility only"}
    return keypoints.left_out(pose, {"feet", "hands", "face", "occluded states"}, why)


def _bbox(points: np.ndarray) -> list[float]:
    if len(points) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    low, high = points.min(axis=0), points.max(axis=0)
    return [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]
