"""Geometric transforms of poses: resize, crop, pad, pad to square, horizontal flip.

Pure functions Pose -> Pose. The same numbers apply to the image (see `square_padding`), so keypoints
stay on the content. Joints that end up outside the canvas become absent: never clamped, because a
clamped joint is a wrong joint. Parts (neck / mid-hip, feet, hands, face) move with the body.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from posedraw.errors import PoseError
from posedraw.pose.core import Part, Pose
from posedraw.pose.schema import FLIP_PERMUTATION, PART_MIRROR, JointState, part_flip_permutation


def drop_outside(pose: Pose) -> Pose:
    """Mark joints (and part points) outside [0, width] x [0, height] absent."""
    parts = {
        name: part.replace(state=np.where(part.inside(pose.width, pose.height), part.state, JointState.ABSENT))
        for name, part in pose.parts.items()
    }
    return pose.replace(state=np.where(pose.inside_canvas(), pose.state, JointState.ABSENT), parts=parts)


def _moved(pose: Pose, move: Callable[[np.ndarray], np.ndarray], **changes: object) -> Pose:
    """The pose with every position, body and parts, passed through `move`."""
    parts = {name: part.replace(xy=move(part.xy)) for name, part in pose.parts.items()}
    return pose.replace(xy=move(pose.xy), parts=parts, **changes)


def _affine(pose: Pose, scale: tuple[float, float], offset: tuple[float, float], width: float, height: float) -> Pose:
    def move(xy: np.ndarray) -> np.ndarray:
        return xy * np.asarray(scale) + np.asarray(offset)

    return drop_outside(_moved(pose, move, width=width, height=height))


def resize(pose: Pose, width: float, height: float) -> Pose:
    """Scale the canvas to width x height (independently per axis, as an image resize does)."""
    _check_size(width, height)
    return _affine(pose, (width / pose.width, height / pose.height), (0.0, 0.0), width, height)


def crop(pose: Pose, left: float, top: float, width: float, height: float) -> Pose:
    """Keep the window [left, left + width] x [top, top + height]; joints outside it become absent."""
    _check_size(width, height)
    return _affine(pose, (1.0, 1.0), (-left, -top), width, height)


def pad(pose: Pose, left: float, top: float, right: float, bottom: float) -> Pose:
    """Add borders around the canvas (negative values crop)."""
    return crop(pose, -left, -top, pose.width + left + right, pose.height + top + bottom)


def square_padding(width: float, height: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) borders that centre a width x height canvas in a square.

    Whole pixels when the sizes are whole, so an image can be padded by exactly the same amounts.
    """
    side = max(width, height)
    extra_x, extra_y = side - width, side - height
    left, top = extra_x // 2, extra_y // 2
    return left, top, extra_x - left, extra_y - top


def pad_to_square(pose: Pose) -> Pose:
    return pad(pose, *square_padding(pose.width, pose.height))


def _mirrored(part: Part | Pose, permutation: np.ndarray, width: float) -> dict[str, np.ndarray | None]:
    xy = part.xy[:, permutation].copy()
    xy[..., 0] = width - xy[..., 0]
    confidence = None if part.confidence is None else part.confidence[:, permutation]
    return {"xy": xy, "state": part.state[:, permutation], "confidence": confidence}


def flip_horizontal(pose: Pose) -> Pose:
    """Mirror left-right: x -> width - x, and each left joint becomes the matching right joint.

    The left hand becomes the right hand, left and right foot points swap, and the face's landmarks trade
    places with their mirror twins (jaw reversed, eyes, brows and lips swapped, pupils swapped).
    """
    parts = {
        PART_MIRROR.get(name, name): Part(**_mirrored(part, part_flip_permutation(name, part.num_points), pose.width))
        for name, part in pose.parts.items()
    }
    return drop_outside(pose.replace(**_mirrored(pose, FLIP_PERMUTATION, pose.width), parts=parts))


def _check_size(width: float, height: float) -> None:
    if not (width > 0 and height > 0):
        raise PoseError(f"canvas: expected a positive width and height, got {width} x {height}")
