"""The COCO-17 joint set and the facts about it that every other module shares.

Joint order and names follow COCO. "Left" is the person's own left, as in COCO, OpenPose and MediaPipe.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

JOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_JOINTS = len(JOINTS)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINTS)}


class JointState(IntEnum):
    """Whether a joint is seen. The values equal COCO's visibility flag v."""

    ABSENT = 0
    OCCLUDED = 1
    VISIBLE = 2


def side_of(joint: str) -> str:
    """'left', 'right' or 'center' for a joint name."""
    if joint.startswith("left_"):
        return "left"
    if joint.startswith("right_"):
        return "right"
    return "center"


def _mirror_name(joint: str) -> str:
    if joint.startswith("left_"):
        return "right_" + joint[len("left_") :]
    if joint.startswith("right_"):
        return "left_" + joint[len("right_") :]
    return joint


# FLIP_PERMUTATION[i] is the joint that joint i becomes after a horizontal flip.
FLIP_PERMUTATION: np.ndarray = np.array([JOINT_INDEX[_mirror_name(j)] for j in JOINTS], dtype=np.int64)

# Limbs of the drawn skeleton as joint-name pairs; the side of a limb is the side of its joints.
LIMBS: tuple[tuple[str, str], ...] = (
    ("nose", "left_eye"),
    ("left_eye", "left_ear"),
    ("nose", "right_eye"),
    ("right_eye", "right_ear"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)
LIMB_INDICES: np.ndarray = np.array([(JOINT_INDEX[a], JOINT_INDEX[b]) for a, b in LIMBS], dtype=np.int64)

# Per-joint falloff constants of COCO's object keypoint similarity (OKS), in COCO joint order.
COCO_SIGMAS: np.ndarray = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)
