"""The `Pose` type: the one representation of keypoints that travels through posedraw.

A Pose holds zero or more people in one canvas. Coordinates are pixels of that canvas as continuous
values: x grows to the right, y downwards, the canvas spans [0, width] x [0, height], so the centre of
pixel (i, j) is (i + 0.5, j + 0.5). Absent joints have no position: their coordinates are NaN.
Coordinates outside the canvas are allowed (pose estimators produce them); transforms mark joints that
they push out of the canvas as absent.

Sizes are bounded so that every consumer's arithmetic stays finite: a canvas side is 1 to `MAX_CANVAS`
pixels and a coordinate at most `MAX_COORDINATE` from the origin, so a position relative to the canvas
(what the pose encoders compute, in float32) is at most 10^6 in size. Larger values come only from mistakes
(a unit mix-up, a corrupt file); a joint at 1e308 would overflow float32 and leave nothing to draw.

Besides the 17 body joints, a Pose may hold optional `parts` (see `schema.PARTS`): named groups of
extra points of every person (a file's own neck and mid-hip, feet, hands, face) with the same
position / state / confidence rules as the body. Body-only code reads `xy` and `state` and never sees them.

A Pose may also carry one text `prompt` per person ("red hair, blue dress" for the one, "blonde hair" for
the other): `prompts` is empty when none was given, else one string per person in person order ("" for a
person without one). Every operation that keeps, drops, reorders or stacks people carries them along.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from posedraw.errors import PoseError
from posedraw.pose.schema import NUM_JOINTS, PART_SIZES, PARTS, JointState

#: the largest canvas side, in pixels: beyond any photo or drawing a pose comes from
MAX_CANVAS = 100_000.0
#: the largest distance of a coordinate from the origin, in pixels (ten of the largest canvases)
MAX_COORDINATE = 10 * MAX_CANVAS
#: the longest per-person prompt, in characters: text encoders read about 77 tokens, far fewer
MAX_PROMPT_CHARS = 1000


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _checked_points(
    xy: object, state: object, confidence: object, sizes: tuple[int, ...] | None, prefix: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated read-only copies of (xy, state, confidence); absent points get NaN positions.

    `sizes` are the allowed point counts (None: any); `prefix` names the group in messages.
    """
    state = np.array(state, dtype=np.int64, copy=True)
    xy = np.array(xy, dtype=np.float64, copy=True)
    if state.ndim != 2 or (sizes is not None and state.shape[1] not in sizes):
        count = "points" if sizes is None else " or ".join(str(n) for n in sizes)
        raise PoseError(f"{prefix}state: expected shape (people, {count}), got {state.shape}")
    if xy.shape != (*state.shape, 2):
        raise PoseError(f"{prefix}xy: expected shape {(*state.shape, 2)}, got {xy.shape}")
    if not np.isin(state, [s.value for s in JointState]).all():
        raise PoseError(f"{prefix}state: expected values 0 (absent), 1 (occluded) or 2 (visible)")
    present = state != JointState.ABSENT
    if not np.isfinite(xy[present]).all():
        raise PoseError(f"{prefix}xy: coordinates of present joints must be finite numbers")
    if not (np.abs(xy[present]) <= MAX_COORDINATE).all():
        far = float(np.abs(xy[present]).max())
        raise PoseError(f"{prefix}xy: expected coordinates from -{MAX_COORDINATE:.0f} to {MAX_COORDINATE:.0f} pixels, "
                        f"got {far:g}")  # fmt: skip
    xy[~present] = np.nan
    if confidence is not None:
        confidence = np.array(confidence, dtype=np.float64, copy=True)
        if confidence.shape != state.shape:
            raise PoseError(f"{prefix}confidence: expected shape {state.shape}, got {confidence.shape}")
        if not (np.isfinite(confidence).all() and (confidence >= 0).all()):
            raise PoseError(f"{prefix}confidence: expected finite non-negative numbers")
        confidence = _readonly(confidence)
    return _readonly(xy), _readonly(state.astype(np.uint8)), confidence


def _inside(xy: np.ndarray, present: np.ndarray, width: float, height: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        x, y = xy[..., 0], xy[..., 1]
        return present & (x >= 0) & (x <= width) & (y >= 0) & (y <= height)


def _same_points(a: Points, b: Points, atol: float, compare_confidence: bool) -> bool:
    if a.state.shape != b.state.shape or not np.array_equal(a.state, b.state):
        return False
    if not np.allclose(a.xy, b.xy, atol=atol, rtol=0, equal_nan=True):
        return False
    if compare_confidence and a.confidence is not None and b.confidence is not None:
        return bool(np.allclose(a.confidence, b.confidence, atol=1e-12, rtol=0))
    return True


class Points:
    """What the body and every part share: `xy` (P, K, 2), `state` (P, K) and optional `confidence` (P, K)."""

    xy: np.ndarray
    state: np.ndarray
    confidence: np.ndarray | None

    @property
    def num_people(self) -> int:
        return int(self.state.shape[0])

    @property
    def present(self) -> np.ndarray:
        """(P, K) bool: the point has a position (visible or occluded)."""
        return self.state != JointState.ABSENT

    @property
    def visible(self) -> np.ndarray:
        return self.state == JointState.VISIBLE


@dataclass(frozen=True, eq=False)
class Part(Points):
    """One optional keypoint group of every person of a Pose: `xy` (P, K, 2), `state` (P, K), `confidence`.

    Which points a part holds, in which order, is `schema.PARTS[name]`; the Pose checks the count.
    """

    xy: np.ndarray
    state: np.ndarray
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        xy, state, confidence = _checked_points(self.xy, self.state, self.confidence, None, "part ")
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "confidence", confidence)

    @classmethod
    def absent(cls, people: int, points: int) -> Part:
        """A part whose points are all absent (a filler for people who lack it)."""
        return cls(np.full((people, points, 2), np.nan), np.zeros((people, points), dtype=np.int64))

    @property
    def num_points(self) -> int:
        return int(self.state.shape[1])

    def replace(self, **changes: object) -> Part:
        fields = {"xy": self.xy, "state": self.state, "confidence": self.confidence}
        fields.update(changes)
        return Part(**fields)  # type: ignore[arg-type]

    def people(self, rows: slice) -> Part:
        """The part of some people only."""
        return Part(self.xy[rows], self.state[rows], None if self.confidence is None else self.confidence[rows])

    def inside(self, width: float, height: float) -> np.ndarray:
        """(P, K) bool: present and within [0, width] x [0, height]."""
        return _inside(self.xy, self.present, width, height)


def _checked_parts(parts: object, people: int) -> Mapping[str, Part]:
    if not isinstance(parts, Mapping):
        raise PoseError(f"parts: expected a mapping of part name to Part, got {type(parts).__name__}")
    for name, part in parts.items():
        if name not in PARTS:
            raise PoseError(f"parts: expected part names from {', '.join(PARTS)}; unknown {name!r}")
        if not isinstance(part, Part):
            raise PoseError(f"parts.{name}: expected a Part, got {type(part).__name__}")
        if part.num_points not in PART_SIZES[name]:
            sizes = " or ".join(str(n) for n in PART_SIZES[name])
            raise PoseError(f"parts.{name}: expected {sizes} points, got {part.num_points}")
        if part.num_people != people:
            raise PoseError(f"parts.{name}: expected {people} people like the body, got {part.num_people}")
    return MappingProxyType({name: parts[name] for name in PARTS if name in parts})


def _checked_prompts(prompts: object, people: int) -> tuple[str, ...]:
    """The per-person prompts as a tuple of one string per person; () when none is given or all are empty,
    so a pose whose prompts say nothing equals one without any."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise PoseError(f"prompts: expected a sequence of one text per person, got {type(prompts).__name__}")
    prompts = tuple(prompts)
    for i, text in enumerate(prompts):
        if not isinstance(text, str):
            raise PoseError(f"prompts[{i}]: expected a text, got {type(text).__name__}")
        if len(text) > MAX_PROMPT_CHARS:
            raise PoseError(f"prompts[{i}]: expected at most {MAX_PROMPT_CHARS} characters, got {len(text)}")
    if not any(prompts):
        return ()
    if len(prompts) != people:
        raise PoseError(f"prompts: expected one per person ({people}), got {len(prompts)}")
    return prompts


@dataclass(frozen=True, eq=False)
class Pose(Points):
    """People in a canvas: `xy` (P, 17, 2) pixels, `state` (P, 17) JointState, optional `confidence`,
    optional `parts` {name: Part} (neck / mid-hip, feet, hands, face; see `schema.PARTS`) and optional
    `prompts` (one text per person, "" for a person without one; () for none).

    Immutable: the arrays are private copies marked read-only; derive new poses with `replace`.
    """

    xy: np.ndarray
    state: np.ndarray
    width: float
    height: float
    confidence: np.ndarray | None = None
    parts: Mapping[str, Part] = field(default_factory=dict)
    prompts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        xy, state, confidence = _checked_points(self.xy, self.state, self.confidence, (NUM_JOINTS,), "")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise PoseError(f"canvas {name}: expected a positive number, got {value!r}")
            if not (math.isfinite(value) and 1 <= value <= MAX_CANVAS):
                raise PoseError(f"canvas {name}: expected a size from 1 to {MAX_CANVAS:.0f} pixels, got {value!r}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "parts", _checked_parts(self.parts, int(state.shape[0])))
        object.__setattr__(self, "prompts", _checked_prompts(self.prompts, int(state.shape[0])))

    def __reduce__(self) -> tuple[type[Pose], tuple[object, ...]]:
        """Pickle by the constructor's arguments (the read-only parts view itself cannot be pickled)."""
        fields = (self.xy, self.state, self.width, self.height, self.confidence, dict(self.parts), self.prompts)
        return (Pose, fields)

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def single(
        cls,
        xy: Sequence[Sequence[float]] | np.ndarray,
        width: float,
        height: float,
        state: Sequence[int] | np.ndarray | None = None,
        confidence: Sequence[float] | np.ndarray | None = None,
        parts: Mapping[str, Part] | None = None,
    ) -> Pose:
        """One person; all joints visible unless `state` says otherwise. `parts` hold one person each."""
        xy_arr = np.asarray(xy, dtype=np.float64)[None]
        state_arr = np.full((1, NUM_JOINTS), JointState.VISIBLE) if state is None else np.asarray(state)[None]
        conf_arr = None if confidence is None else np.asarray(confidence, dtype=np.float64)[None]
        return cls(xy_arr, state_arr, width, height, conf_arr, parts or {})

    @classmethod
    def stack(cls, poses: Sequence[Pose]) -> Pose:
        """All people of several poses of the same canvas in one Pose.

        A part some poses lack is absent for their people; a 68-point face is padded with absent pupils
        when another pose has 70.
        """
        if not poses:
            raise PoseError("cannot stack an empty list of poses")
        canvas = poses[0].canvas
        if any(p.canvas != canvas for p in poses):
            raise PoseError("cannot stack poses with different canvases")
        names = [name for name in PARTS if any(name in p.parts for p in poses)]
        return cls(
            np.concatenate([p.xy for p in poses]),
            np.concatenate([p.state for p in poses]),
            canvas[0],
            canvas[1],
            _stacked_confidence([p.confidence for p in poses]),
            {name: _stacked_part(name, poses) for name in names},
            _stacked_prompts(poses),
        )

    def replace(self, **changes: object) -> Pose:
        """A copy with some fields changed (validated again)."""
        fields = {
            "xy": self.xy,
            "state": self.state,
            "width": self.width,
            "height": self.height,
            "confidence": self.confidence,
            "parts": self.parts,
            "prompts": self.prompts,
        }
        fields.update(changes)
        return Pose(**fields)  # type: ignore[arg-type]

    # --- views --------------------------------------------------------------------------------------
    @property
    def canvas(self) -> tuple[float, float]:
        return (self.width, self.height)

    def person(self, index: int) -> Pose:
        """The pose of one person as a Pose of its own (with that person's parts)."""
        if not -self.num_people <= index < self.num_people:
            raise PoseError(f"person {index}: the pose holds {self.num_people} people")
        i = index % self.num_people
        sl = slice(i, i + 1)
        conf = None if self.confidence is None else self.confidence[sl]
        parts = {name: part.people(sl) for name, part in self.parts.items()}
        return Pose(self.xy[sl], self.state[sl], self.width, self.height, conf, parts, self.prompts[sl])

    def prompt(self, index: int) -> str:
        """The prompt of one person ("" when that person, or the whole pose, has none)."""
        return self.prompts[index] if self.prompts else ""

    def box(self, index: int) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1): the pixel box around one person's visible and occluded body joints; None when the
        person has none (where a person is, so a user can tell who is who)."""
        xy = self.xy[index][self.present[index]]
        if not len(xy):
            return None
        (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    def inside_canvas(self) -> np.ndarray:
        """(P, 17) bool: present and within [0, width] x [0, height]."""
        return _inside(self.xy, self.present, self.width, self.height)

    def allclose(self, other: Pose, atol: float = 1e-6, compare_confidence: bool = True) -> bool:
        """Same canvas, states and positions (within `atol` pixels), and confidences when both have them.

        Per-person prompts must be equal. Parts compare the same way; absent points hold nothing, so a part
        whose points are all absent equals a part that is not there, and a 70-point face with absent pupils
        equals the 68-point face.
        """
        if self.canvas != other.canvas or self.prompts != other.prompts:
            return False
        if not _same_points(self, other, atol, compare_confidence):
            return False
        for name in set(self.parts) | set(other.parts):
            mine, theirs = self.parts.get(name), other.parts.get(name)
            count = max(p.num_points for p in (mine, theirs) if p is not None)
            mine, theirs = _padded(mine, self.num_people, count), _padded(theirs, other.num_people, count)
            if not _same_points(mine, theirs, atol, compare_confidence):
                return False
        return True


def _stacked_confidence(confidences: list[np.ndarray | None]) -> np.ndarray | None:
    """Concatenated confidences, or None unless every block has them."""
    if any(c is None for c in confidences):
        return None
    return np.concatenate(confidences)  # type: ignore[arg-type]


def _stacked_prompts(poses: Sequence[Pose]) -> tuple[str, ...]:
    """The prompts of every person in stacking order ("" for people of poses without any)."""
    return tuple(p.prompt(i) for p in poses for i in range(p.num_people))


def _stacked_part(name: str, poses: Sequence[Pose]) -> Part:
    count = max(p.parts[name].num_points for p in poses if name in p.parts)
    blocks = [_padded(p.parts.get(name), p.num_people, count) for p in poses]
    holders = [block for block, p in zip(blocks, poses) if name in p.parts]
    confidence = None
    if all(block.confidence is not None for block in holders):
        confidence = np.concatenate(
            [b.confidence if b.confidence is not None else np.zeros(b.state.shape) for b in blocks]
        )
    return Part(np.concatenate([b.xy for b in blocks]), np.concatenate([b.state for b in blocks]), confidence)


def _padded(part: Part | None, people: int, count: int) -> Part:
    """The part with absent points added up to `count` (a missing part: all absent, no confidence)."""
    if part is None:
        return Part.absent(people, count)
    extra = count - part.num_points
    if extra == 0:
        return part
    confidence = None if part.confidence is None else np.pad(part.confidence, ((0, 0), (0, extra)))
    xy = np.pad(part.xy, ((0, 0), (0, extra), (0, 0)), constant_values=np.nan)
    return Part(xy, np.pad(part.state, ((0, 0), (0, extra))), confidence)
