"""Pose from a photo with MediaPipe's legacy pose solution (optional extra `detect`).

MediaPipe wheels 0.10.14 to 0.10.21 ship the legacy pose model inside the package, so this works offline;
newer releases download it at run time. `model_complexity=1` is the variant shipped. MediaPipe finds one
person; its 33 landmarks map to COCO-17 (its "left" is the person's left, as in COCO).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from posedraw.errors import DetectionError
from posedraw.pose.core import Pose
from posedraw.pose.schema import JOINTS, JointState
from posedraw.pose.transforms import drop_outside

# MediaPipe landmark index of each COCO joint, in COCO order.
MEDIAPIPE_INDEX: dict[str, int] = {
    "nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8,
    "left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14,
    "left_wrist": 15, "right_wrist": 16, "left_hip": 23, "right_hip": 24,
    "left_knee": 25, "right_knee": 26, "left_ankle": 27, "right_ankle": 28,
}  # fmt: skip
VISIBLE_THRESHOLD = 0.5


def landmarks_to_pose(landmarks: np.ndarray, width: int, height: int) -> Pose:
    """COCO pose from MediaPipe landmarks (33, 3) of normalized x, y and visibility.

    visibility >= 0.5 -> visible, below -> occluded (MediaPipe still places the joint); landmarks outside
    the image -> absent. The visibility becomes the confidence.
    """
    picked = landmarks[[MEDIAPIPE_INDEX[j] for j in JOINTS]]
    xy = picked[:, :2] * np.array([width, height])
    visibility = np.clip(picked[:, 2], 0.0, 1.0)
    state = np.where(visibility >= VISIBLE_THRESHOLD, JointState.VISIBLE, JointState.OCCLUDED)
    return drop_outside(Pose.single(xy, width, height, state=state, confidence=visibility))


def _mediapipe_pose() -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe logs start-up chatter to stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from mediapipe.python.solutions import pose as mp_pose
    except ImportError:
        raise DetectionError(
            "pose detection needs the optional MediaPipe dependency: pip install 'posedraw[detect]'"
        ) from None
    return mp_pose.Pose(static_image_mode=True, model_complexity=1)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """MediaPipe's C++ core logs warnings straight to file descriptor 2 at every start; hide them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def detect_pose(image: np.ndarray, source: str = "image") -> Pose:
    """The pose of the person in an RGB uint8 image (H, W, 3); DetectionError if there is none."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DetectionError(f"{source}: expected an RGB uint8 image, got {image.dtype} {image.shape}")
    with _native_stderr_silenced(), _mediapipe_pose() as detector:
        result = detector.process(np.ascontiguousarray(image))
    if result.pose_landmarks is None:
        raise DetectionError(f"{source}: no person found")
    landmarks = np.array([(lm.x, lm.y, lm.visibility) for lm in result.pose_landmarks.landmark])
    height, width = image.shape[:2]
    return landmarks_to_pose(landmarks, width, height)
