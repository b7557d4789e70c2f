"""Keypoint arrays as files store them, and what a format leaves out of a Pose.

Files store keypoints as flat `[x, y, c, x, y, c, ...]` arrays (OpenPose, COCO) or as nested
`[[x, y, c], ...]` triples (ComfyUI editors); `null` or `[]` means the person has none. Writers report,
in words, what of a pose their format cannot hold, so `pose convert` can say so instead of dropping it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedraw.pose.core import Pose
from posedraw.pose.formats.fields import as_list, fail, numbers
from posedraw.pose.schema import JointState


def _alternatives(values: tuple[int, ...]) -> str:
    return " or ".join(str(v) for v in values)


def triples(
    value: Any, where: str, counts: tuple[int, ...], what: str, third: str = "confidences"
) -> np.ndarray | None:
    """(K, 3) (x, y, third value) rows with K in `counts`, from a flat or nested array; None for null or [].

    `what` names the expected content in the error message ("a hand"); `third` names the third values.
    """
    if value is None:
        return None
    items = as_list(value, where)
    if not items:
        return None
    if isinstance(items[0], list):
        if len(items) not in counts:
            raise fail(where, f"an array of {_alternatives(counts)} [x, y, c] triples ({what})", items)
        rows = [numbers(item, f"{where}[{i}]", (3,)) for i, item in enumerate(items)]
        array = np.array(rows, dtype=np.float64).reshape(-1, 3)
    else:
        lengths = tuple(3 * n for n in counts)
        if len(items) not in lengths:
            expected = (
                f"an array of {_alternatives(lengths)} numbers ({_alternatives(counts)} keypoint triples: {what})"
            )
            raise fail(where, expected, items)
        array = np.array(numbers(items, where, lengths), dtype=np.float64).reshape(-1, 3)
    if (array[:, 2] < 0).any():
        raise fail(where, f"{third} >= 0 (every third value)", show_got=False)
    return array


def _has(part: Any, points: slice = slice(None)) -> bool:
    return part is not None and bool(part.present[:, points].any())


def held_items(pose: Pose) -> list[str]:
    """What `pose` holds beyond the positions of its body joints, as words for a note on what was left out."""
    parts = pose.parts
    face = parts.get("face")
    found = {
        "neck": _has(parts.get("torso"), slice(0, 1)),
        "mid-hip": _has(parts.get("torso"), slice(1, 2)),
        "feet": _has(parts.get("feet")),
        "hands": _has(parts.get("left_hand")) or _has(parts.get("right_hand")),
        "face": _has(face),
        "pupils": face is not None and face.num_points == 70 and _has(face, slice(68, 70)),
        "occluded states": bool((pose.state == JointState.OCCLUDED).any())
        or any((p.state == JointState.OCCLUDED).any() for p in parts.values()),
        "confidences": pose.confidence is not None or any(p.confidence is not None for p in parts.values()),
        "per-person prompts": bool(pose.prompts),
    }
    return [item for item, held in found.items() if held]


def left_out(pose: Pose, holds: set[str], why: dict[str, str] | None = None) -> list[str]:
    """The items of `pose` a format cannot hold (those not in `holds`), each with its reason from `why`."""
    why = {"per-person prompts": "only posedraw JSON holds them", **(why or {})}
    if "face" not in holds:
        holds = holds | {"pupils"}  # said by "face"
    return [item + (f" ({why[item]})" if item in why else "") for item in held_items(pose) if item not in holds]
