"""A sampler of plausible, varied, seeded poses for synthetic figures.

Poses are built from a small articulated body (bone lengths in head units, joint angles per activity),
then placed in the canvas. Kinds: standing, walking, arms raised, waving, sitting; any of them mirrored
(left/right swapped by a real flip), seen three-quarter (the far ear occluded), or partly out of frame
(joints outside the canvas become absent). Angles: 0 points straight down, positive turns towards the
image's right; the figure faces the viewer, so its left side is on the image's right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posedraw.pose import JointState, Pose
from posedraw.pose.schema import FLIP_PERMUTATION, JOINT_INDEX
from posedraw.pose.transforms import drop_outside

KINDS = ("standing", "walking", "arms_raised", "waving", "sitting")


@dataclass(frozen=True)
class SampledPose:
    """A pose with its full (unclipped) positions for drawing, and its label (outside joints absent)."""

    full: Pose  # every joint placed, some maybe outside the canvas: what the renderer draws
    label: Pose  # what a viewer can see: joints outside the canvas are absent
    kind: str
    mirrored: bool
    out_of_frame: bool
    head_size: float  # pixels per head unit, for the renderer's proportions


def _direction(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([math.sin(a), math.cos(a)])


def _limb_angles(kind: str, rng: np.random.Generator) -> dict[str, float]:
    """Upper/lower angles of arms and legs for an activity (left = image right = positive outward)."""

    def uniform(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    if kind == "standing":
        angles = {
            "l_arm": uniform(8, 30),
            "l_fore": uniform(0, 25),
            "r_arm": -uniform(8, 30),
            "r_fore": -uniform(0, 25),
            "l_leg": uniform(2, 10),
            "l_shin": uniform(-3, 5),
            "r_leg": -uniform(2, 10),
            "r_shin": -uniform(-3, 5),
        }
    elif kind == "walking":
        swing = uniform(15, 30)
        angles = {
            "l_arm": swing,
            "l_fore": swing + uniform(5, 25),
            "r_arm": -swing * 0.6,
            "r_fore": -swing * 0.6 - uniform(0, 20),
            "l_leg": -uniform(5, 20),
            "l_shin": -uniform(0, 15),
            "r_leg": uniform(5, 25),
            "r_shin": uniform(10, 30),
        }
    elif kind == "arms_raised":
        angles = {
            "l_arm": uniform(140, 170),
            "l_fore": uniform(150, 185),
            "r_arm": -uniform(140, 170),
            "r_fore": -uniform(150, 185),
            "l_leg": uniform(3, 12),
            "l_shin": uniform(0, 6),
            "r_leg": -uniform(3, 12),
            "r_shin": -uniform(0, 6),
        }
    elif kind == "waving":
        angles = {
            "l_arm": uniform(95, 130),
            "l_fore": uniform(160, 200),
            "r_arm": -uniform(8, 25),
            "r_fore": -uniform(0, 20),
            "l_leg": uniform(2, 10),
            "l_shin": uniform(0, 5),
            "r_leg": -uniform(2, 10),
            "r_shin": -uniform(0, 5),
        }
    else:  # sitting: thighs forward (towards the viewer, foreshortened) and to one side, shins down
        side = 1.0 if rng.random() < 0.5 else -1.0
        angles = {
            "l_arm": uniform(10, 35),
            "l_fore": uniform(30, 70),
            "r_arm": -uniform(10, 35),
            "r_fore": -uniform(30, 70),
            "l_leg": side * uniform(60, 85),
            "l_shin": uniform(-5, 10),
            "r_leg": side * uniform(60, 85),
            "r_shin": -uniform(-5, 10),
        }
    return angles


def _body(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(17, 2) positions in head units with the neck at the origin, and the states."""
    angles = _limb_angles(kind, rng)
    xy = np.zeros((17, 2))
    state = np.full(17, JointState.VISIBLE)
    lean = float(rng.uniform(-6, 6))
    yaw = float(rng.choice([0.0, 0.0, 0.0, -1.0, 1.0]) * rng.uniform(0.4, 0.8))  # three-quarter view
    shoulder, hip = 0.75 * (1 - 0.3 * abs(yaw)), 0.45 * (1 - 0.3 * abs(yaw))
    xy[JOINT_INDEX["left_shoulder"]], xy[JOINT_INDEX["right_shoulder"]] = (shoulder, 0.15), (-shoulder, 0.15)
    mid_hip = 2.3 * _direction(lean)
    offset = np.array([hip, 0.0])
    xy[JOINT_INDEX["left_hip"]], xy[JOINT_INDEX["right_hip"]] = mid_hip + offset, mid_hip - offset
    thigh = 1.8 * (0.55 if kind == "sitting" else 1.0)  # foreshortened when pointing at the viewer
    for side, short in (("left", "l"), ("right", "r")):
        elbow = xy[JOINT_INDEX[f"{side}_shoulder"]] + 1.25 * _direction(angles[f"{short}_arm"])
        xy[JOINT_INDEX[f"{side}_elbow"]] = elbow
        xy[JOINT_INDEX[f"{side}_wrist"]] = elbow + 1.15 * _direction(angles[f"{short}_fore"])
        knee = xy[JOINT_INDEX[f"{side}_hip"]] + thigh * _direction(angles[f"{short}_leg"])
        xy[JOINT_INDEX[f"{side}_knee"]] = knee
        xy[JOINT_INDEX[f"{side}_ankle"]] = knee + 1.7 * _direction(angles[f"{short}_shin"])
    nose = np.array([0.35 * yaw, -0.85])
    xy[JOINT_INDEX["nose"]] = nose
    for side, sign in (("left", 1.0), ("right", -1.0)):
        xy[JOINT_INDEX[f"{side}_eye"]] = nose + np.array([sign * 0.22 + 0.12 * yaw, -0.18])
        xy[JOINT_INDEX[f"{side}_ear"]] = nose + np.array([sign * 0.45 - 0.15 * yaw, -0.05])
    if yaw > 0.3:  # turned towards the image's right: the right ear is behind the head
        state[JOINT_INDEX["right_ear"]] = JointState.OCCLUDED
    elif yaw < -0.3:
        state[JOINT_INDEX["left_ear"]] = JointState.OCCLUDED
    return xy, state


def sample_pose(
    rng: np.random.Generator, size: int = 64, kind: str | None = None, out_of_frame_share: float = 0.15
) -> SampledPose:
    """A random plausible pose in a size x size canvas; `out_of_frame_share` of them partly outside it."""
    kind = kind or str(rng.choice(KINDS))
    xy, state = _body(kind, rng)
    head = np.array([[0.0, -1.45], [0.0, -0.85]])  # top of the head and chin, so the head fits too
    points = np.vstack([xy, head])
    low, high = points.min(axis=0) - 0.3, points.max(axis=0) + 0.3
    out_of_frame = bool(rng.random() < out_of_frame_share)
    fill = rng.uniform(1.2, 1.6) if out_of_frame else rng.uniform(0.7, 0.92)
    scale = fill * size / max(high - low)
    centre = (low + high) / 2
    room = np.maximum(size - (high - low) * scale, 0) / 2
    shift = rng.uniform(-room, room) if not out_of_frame else rng.uniform(-0.25, 0.25, 2) * size
    placed = (xy - centre) * scale + size / 2 + shift
    full = Pose.single(placed, size, size, state=state)
    mirrored = bool(rng.random() < 0.5)
    if mirrored:  # flip the drawing geometry and the labels together (a real flip swaps left and right)
        full = Pose.single(_mirrored_positions(full), size, size, state=full.state[0][FLIP_PERMUTATION])
    label = drop_outside(full)
    return SampledPose(full, label, kind, mirrored, out_of_frame or not label.present.all(), float(scale))


def _mirrored_positions(pose: Pose) -> np.ndarray:
    """Positions of the mirrored pose without dropping joints outside the canvas (for drawing)."""
    xy = pose.xy[0][FLIP_PERMUTATION].copy()
    xy[:, 0] = pose.width - xy[:, 0]
    return xy


def example_pose(kind: str, size: int = 512) -> Pose:
    """The example pose of `kind` (examples/poses, the studio's presets): the first pose of that kind from
    seeds 2 * 10**9, ... that lies wholly inside the frame."""
    seed = 2 * 10**9
    while (sampled := sample_pose(np.random.default_rng(seed), size, kind)).out_of_frame:
        seed += 1
    return sampled.label
