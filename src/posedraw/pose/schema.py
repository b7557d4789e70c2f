"""The COCO-17 joint set, the optional parts (torso, feet, hands, face), and the facts every module shares.

Joint order and names follow COCO. "Left" is the person's own left, as in COCO, OpenPose and MediaPipe.
Parts hold what the ecosystem's files add to the body: OpenPose's own neck and BODY_25's mid-hip, the six
foot points of BODY_25 / COCO-WholeBody, OpenPose's 21-point hands and the 68 (or 70) face landmarks.
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


# --- parts: optional keypoint groups beyond the 17 body joints --------------------------------------------
# OpenPose's hand order: the wrist, then each finger from its base to its tip.
HAND_POINTS: tuple[str, ...] = (
    "wrist",
    *(f"{finger}_{k}" for finger in ("thumb", "index", "middle", "ring", "pinky") for k in range(1, 5)),
)
# The 68 iBUG landmarks (point 0 is the jaw on the person's right), then OpenPose's two pupils.
FACE_POINTS: tuple[str, ...] = (*(f"face_{i}" for i in range(68)), "right_pupil", "left_pupil")
FOOT_POINTS: tuple[str, ...] = (
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)
# Point names of each part, in the order files store them (BODY_25, COCO-WholeBody and OpenPose agree).
PARTS: dict[str, tuple[str, ...]] = {
    "torso": ("neck", "mid_hip"),
    "feet": FOOT_POINTS,
    "left_hand": HAND_POINTS,
    "right_hand": HAND_POINTS,
    "face": FACE_POINTS,
}
# Allowed point counts: a face is the 68 iBUG landmarks (DWPose, COCO-WholeBody) or 70 with the pupils (OpenPose).
PART_SIZES: dict[str, tuple[int, ...]] = {**{name: (len(points),) for name, points in PARTS.items()}, "face": (68, 70)}
# A horizontal flip turns one hand into the other; the other parts stay themselves (their points swap inside).
PART_MIRROR: dict[str, str] = {"left_hand": "right_hand", "right_hand": "left_hand"}

# iBUG points that trade places in a mirror image; points not listed (nose bridge, centre line) stay.
_FACE_MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    *((i, 16 - i) for i in range(8)),  # jaw
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),  # brows
    (31, 35), (32, 34),  # nostrils
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),  # outer lips
    (60, 64), (61, 63), (65, 67),  # inner lips
    (68, 69),  # pupils
)  # fmt: skip


def _face_flip() -> np.ndarray:
    permutation = np.arange(len(FACE_POINTS))
    for a, b in _FACE_MIRROR_PAIRS:
        permutation[a], permutation[b] = b, a
    return permutation


_PART_FLIPS: dict[str, np.ndarray] = {
    name: np.array([points.index(_mirror_name(point)) for point in points], dtype=np.int64)
    for name, points in PARTS.items()
    if name != "face"
}
_PART_FLIPS["face"] = _face_flip()


def part_flip_permutation(name: str, count: int) -> np.ndarray:
    """Index i of the result is the point that point i of part `name` becomes after a horizontal flip."""
    return _PART_FLIPS[name][:count]


# Bones drawn for the parts, as point-index pairs inside the part: each finger from the wrist to its tip.
HAND_BONES: tuple[tuple[int, int], ...] = tuple(
    (0 if k == 0 else 1 + 4 * finger + k - 1, 1 + 4 * finger + k) for finger in range(5) for k in range(4)
)
# Foot bones join a body ankle (by COCO name) to the points of its foot (by foot point name), as BODY_25 draws them.
FOOT_BONES: tuple[tuple[str, str], ...] = (
    ("left_ankle", "left_big_toe"),
    ("left_big_toe", "left_small_toe"),
    ("left_ankle", "left_heel"),
    ("right_ankle", "right_big_toe"),
    ("right_big_toe", "right_small_toe"),
    ("right_ankle", "right_heel"),
)
