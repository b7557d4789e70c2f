"""Person count error: did the drawing hold as many people as the pose asked for?

HumanSD's protocol reports the mean over images of |people detected - people asked for|. A detected
person counts when at least `MIN_JOINTS` of its joints were found: the toy detector always returns a
pose per place it looked at, with missing joints absent, and a figure partly outside the picture can
show as few as four joints (the pose sampler's labels: 4 to 17 present).

What a detector can count: the toy detector looks for each asked-for person in a crop around where
that person should be (`posedraw.eval.fidelity`), so it finds missing figures (the count falls) but never
extra ones; MediaPipe's legacy solution finds at most one person per image, so on scenes of several
people it reports too few by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posedraw.pose import Pose

MIN_JOINTS = 4


def people_found(pose: Pose, min_joints: int = MIN_JOINTS) -> int:
    """How many people of a detected pose have at least `min_joints` present joints."""
    return int((pose.present.sum(axis=1) >= min_joints).sum())


def people_asked(pose: Pose) -> int:
    """How many people of a conditioning pose have a present joint (a person without one cannot be drawn)."""
    return int(pose.present.any(axis=1).sum())


def person_count_errors(detected: Sequence[Pose], targets: Sequence[Pose]) -> np.ndarray:
    """|found - asked| for each image."""
    return np.array([abs(people_found(d) - people_asked(t)) for d, t in zip(detected, targets)], dtype=np.float64)
