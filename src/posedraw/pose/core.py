"""The `Pose` type: the one representation of keypoints that travels through posedraw.

A Pose holds one or more people in one canvas. Coordinates are pixels of that canvas as continuous
values: x grows to the right, y downwards, the canvas spans [0, width] x [0, height], so the centre of
pixel (i, j) is (i + 0.5, j + 0.5). Absent joints have no position: their coordinates are NaN.
Coordinates outside the canvas are allowed (pose estimators produce them); transforms mark joints that
they push out of the canvas as absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from posedraw.errors import PoseError
from posedraw.pose.schema import NUM_JOINTS, JointState


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Pose:
    """People in a canvas: `xy` (P, 17, 2) pixels, `state` (P, 17) JointState, optional `confidence`.

    Immutable: the arrays are private copies marked read-only; derive new poses with `replace`.
    """

    xy: np.ndarray
    state: np.ndarray
    width: float
    height: float
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        state = np.array(self.state, dtype=np.int64, copy=True)
        xy = np.array(self.xy, dtype=np.float64, copy=True)
        if state.ndim != 2 or state.shape[1] != NUM_JOINTS:
            raise PoseError(f"state: expected shape (people, {NUM_JOINTS}), got {state.shape}")
        if xy.shape != (*state.shape, 2):
            raise PoseError(f"xy: expected shape {(*state.shape, 2)}, got {xy.shape}")
        if not np.isin(state, [s.value for s in JointState]).all():
            raise PoseError("state: expected values 0 (absent), 1 (occluded) or 2 (visible)")
        present = state != JointState.ABSENT
        if not np.isfinite(xy[present]).all():
            raise PoseError("xy: coordinates of present joints must be finite numbers")
        xy[~present] = np.nan
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise PoseError(f"canvas {name}: expected a positive number, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise PoseError(f"canvas {name}: expected a positive finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "xy", _readonly(xy))
        object.__setattr__(self, "state", _readonly(state.astype(np.uint8)))
        if self.confidence is not None:
            confidence = np.array(self.confidence, dtype=np.float64, copy=True)
            if confidence.shape != state.shape:
                raise PoseError(f"confidence: expected shape {state.shape}, got {confidence.shape}")
            if not (np.isfinite(confidence).all() and (confidence >= 0).all()):
                raise PoseError("confidence: expected finite non-negative numbers")
            object.__setattr__(self, "confidence", _readonly(confidence))

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def single(
        cls,
        xy: Sequence[Sequence[float]] | np.ndarray,
        width: float,
        height: float,
        state: Sequence[int] | np.ndarray | None = None,
        confidence: Sequence[float] | np.ndarray | None = None,
    ) -> Pose:
        """One person; all joints visible unless `state` says otherwise."""
        xy_arr = np.asarray(xy, dtype=np.float64)[None]
        state_arr = np.full((1, NUM_JOINTS), JointState.VISIBLE) if state is None else np.asarray(state)[None]
        conf_arr = None if confidence is None else np.asarray(confidence, dtype=np.float64)[None]
        return cls(xy_arr, state_arr, width, height, conf_arr)

    @classmethod
    def stack(cls, poses: Sequence[Pose]) -> Pose:
        """All people of several poses of the same canvas in one Pose."""
        if not poses:
            raise PoseError("cannot stack an empty list of poses")
        canvas = poses[0].canvas
        if any(p.canvas != canvas for p in poses):
            raise PoseError("cannot stack poses with different canvases")
        if any(p.confidence is None for p in poses) and any(p.confidence is not None for p in poses):
            confidence = None
        else:
            confidence = None if poses[0].confidence is None else np.concatenate([p.confidence for p in poses])
        return cls(
            np.concatenate([p.xy for p in poses]),
            np.concatenate([p.state for p in poses]),
            canvas[0],
            canvas[1],
            confidence,
        )

    def replace(self, **changes: object) -> Pose:
        """A copy with some fields changed (validated again)."""
        fields = {
            "xy": self.xy,
            "state": self.state,
            "width": self.width,
            "height": self.height,
            "confidence": self.confidence,
        }
        fields.update(changes)
        return Pose(**fields)  # type: ignore[arg-type]

    # --- views --------------------------------------------------------------------------------------
    @property
    def canvas(self) -> tuple[float, float]:
        return (self.width, self.height)

    @property
    def num_people(self) -> int:
        return int(self.state.shape[0])

    @property
    def present(self) -> np.ndarray:
        """(P, 17) bool: the joint has a position (visible or occluded)."""
        return self.state != JointState.ABSENT

    @property
    def visible(self) -> np.ndarray:
        return self.state == JointState.VISIBLE

    def person(self, index: int) -> Pose:
        """The pose of one person as a Pose of its own."""
        if not -self.num_people <= index < self.num_people:
            raise PoseError(f"person {index}: the pose holds {self.num_people} people")
        i = index % self.num_people
        sl = slice(i, i + 1)
        conf = None if self.confidence is None else self.confidence[sl]
        return Pose(self.xy[sl], self.state[sl], self.width, self.height, conf)

    def inside_canvas(self) -> np.ndarray:
        """(P, 17) bool: present and within [0, width] x [0, height]."""
        with np.errstate(invalid="ignore"):
            x, y = self.xy[..., 0], self.xy[..., 1]
            return self.present & (x >= 0) & (x <= self.width) & (y >= 0) & (y <= self.height)

    def allclose(self, other: Pose, atol: float = 1e-6, compare_confidence: bool = True) -> bool:
        """Same canvas, states and positions (within `atol` pixels), and confidences when both have them."""
        if self.canvas != other.canvas or self.state.shape != other.state.shape:
            return False
        if not np.array_equal(self.state, other.state):
            return False
        if not np.allclose(self.xy, other.xy, atol=atol, rtol=0, equal_nan=True):
            return False
        if compare_confidence and self.confidence is not None and other.confidence is not None:
            return bool(np.allclose(self.confidence, other.confidence, atol=1e-12, rtol=0))
        return True
