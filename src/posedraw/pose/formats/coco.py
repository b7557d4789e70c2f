"""COCO keypoints: annotation files (`annotations[].keypoints` as x, y, v) and result files (x, y, score).

A COCO file may describe many images; a Pose is one canvas, so the reader takes the image chosen by
`ReadOptions.image_id` (or the only one). v = 0/1/2 maps exactly onto absent/occluded/visible.
Results carry no canvas and no visibility: the canvas must be given, a score > 0 means the joint is
present, and the score becomes its confidence. The writer produces an annotation file (confidences are
not part of that format).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedraw.pose.core import Pose
from posedraw.pose.formats.fields import (
    ReadOptions,
    as_dict,
    as_list,
    as_positive,
    canvas_from,
    fail,
    json_number,
    numbers,
)
from posedraw.pose.schema import JOINTS, LIMB_INDICES, NUM_JOINTS, JointState

_TRIPLES = 3 * NUM_JOINTS


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


def _read_annotations(doc: dict[str, Any], options: ReadOptions) -> Pose:
    annotations = [
        as_dict(a, f"annotations[{i}]") for i, a in enumerate(as_list(doc.get("annotations"), "annotations"))
    ]
    entries = [(i, a) for i, a in enumerate(annotations) if "keypoints" in a]
    if not entries:
        raise fail("annotations", "at least one annotation with keypoints", show_got=False)
    ids = [_image_key(a.get("image_id"), f"annotations[{i}].image_id") for i, a in entries]
    image_id = _choose_image(ids, options, "annotations")
    triples = np.stack(
        [
            np.array(numbers(a["keypoints"], f"annotations[{i}].keypoints", (_TRIPLES,))).reshape(NUM_JOINTS, 3)
            for (i, a), key in zip(entries, ids)
            if key == image_id
        ]
    )
    if not np.isin(triples[..., 2], (0, 1, 2)).all():
        raise fail("annotations[].keypoints", "visibility flags v of 0, 1 or 2 (every third value)", show_got=False)
    width, height = canvas_from(options, _image_canvas(doc, image_id), "images", "pass --canvas WIDTHxHEIGHT")
    return Pose(triples[..., :2], triples[..., 2].astype(np.int64), width, height)


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
    triples = np.stack(
        [
            np.array(numbers(r["keypoints"], f"[{i}].keypoints", (_TRIPLES,))).reshape(NUM_JOINTS, 3)
            for i, (r, key) in enumerate(zip(doc, ids))
            if key == image_id
        ]
    )
    if (triples[..., 2] < 0).any():
        raise fail("[].keypoints", "scores >= 0 (every third value)", show_got=False)
    width, height = canvas_from(options, None, "results", "pass --canvas WIDTHxHEIGHT")
    found = triples[..., 2] > 0
    state = np.where(found, JointState.VISIBLE, JointState.ABSENT)
    return Pose(triples[..., :2], state, width, height, confidence=triples[..., 2])


def read(doc: Any, options: ReadOptions) -> Pose:
    if looks_like_results(doc):
        return _read_results(doc, options)
    return _read_annotations(as_dict(doc, "document"), options)


def write(pose: Pose, image_id: int | str = 1) -> dict[str, Any]:
    annotations = []
    for p in range(pose.num_people):
        xy = np.where(pose.present[p][:, None], pose.xy[p], 0.0)
        flat = np.concatenate([xy, pose.state[p][:, None].astype(np.float64)], axis=1).ravel()
        keypoints = [json_number(v) if i % 3 == 2 else float(v) for i, v in enumerate(flat)]
        annotations.append(
            {
                "id": p + 1,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "num_keypoints": int(pose.present[p].sum()),
                "bbox": _bbox(pose.xy[p][pose.present[p]]),
                "keypoints": keypoints,
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


def _bbox(points: np.ndarray) -> list[float]:
    if len(points) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    low, high = points.min(axis=0), points.max(axis=0)
    return [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]
