"""Pose agreement metrics: PCK@alpha and COCO's object keypoint similarity (OKS).

People are compared by index (person i of the prediction with person i of the target). Joints absent in
the target are ignored; a joint the prediction lacks counts as a miss. The person's scale is the
bounding box of the target's present joints: its larger side for PCK, its area for OKS (COCO uses the
segmentation area, which poses do not have).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posedraw.errors import PoseError
from posedraw.pose.core import Pose
from posedraw.pose.schema import COCO_SIGMAS, JOINTS


@dataclass(frozen=True)
class JointScores:
    """A score per joint (NaN where no person had that joint) and the mean over all counted joints."""

    per_joint: np.ndarray
    mean: float
    count: int

    def as_dict(self) -> dict[str, float | None]:
        values = {name: (None if np.isnan(v) else float(v)) for name, v in zip(JOINTS, self.per_joint)}
        return {"mean": None if np.isnan(self.mean) else self.mean, **values}


def _paired(predicted: Pose, target: Pose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances (P, 17) in target pixels, the counted-joint mask, and each target person's bbox (P, 2)."""
    if predicted.num_people != target.num_people:
        raise PoseError(f"metrics: {predicted.num_people} predicted people vs {target.num_people} in the target")
    scale = np.array([target.width / predicted.width, target.height / predicted.height])
    distance = np.linalg.norm(predicted.xy * scale - target.xy, axis=-1)
    distance = np.where(predicted.present, distance, np.inf)
    present = target.present[..., None]
    low = np.where(present, target.xy, np.inf).min(axis=1)
    high = np.where(present, target.xy, -np.inf).max(axis=1)
    extent = np.where(target.present.any(axis=1)[:, None], high - low, 0.0)
    return distance, target.present.copy(), extent


def _summarize(scores: np.ndarray, counted: np.ndarray) -> JointScores:
    total = counted.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(total > 0, np.where(counted, scores, 0).sum(axis=0) / total, np.nan)
    count = int(counted.sum())
    mean = float(np.where(counted, scores, 0).sum() / count) if count else float("nan")
    return JointScores(per_joint, mean, count)


def pck(predicted: Pose, target: Pose, alpha: float = 0.1) -> JointScores:
    """Fraction of target joints whose prediction lies within alpha * (larger bbox side) of it."""
    distance, counted, extent = _paired(predicted, target)
    size = extent.max(axis=1, keepdims=True)
    counted &= size > 0
    correct = (distance <= alpha * size).astype(np.float64)
    return _summarize(correct, counted)


def oks(predicted: Pose, target: Pose) -> JointScores:
    """Per-joint keypoint similarity exp(-d^2 / (2 s^2 k^2)), k = 2 sigma, s^2 = bbox area."""
    distance, counted, extent = _paired(predicted, target)
    area = (extent[:, 0] * extent[:, 1])[:, None]
    counted &= area > 0
    k = 2.0 * COCO_SIGMAS
    with np.errstate(divide="ignore", invalid="ignore"):
        similarity = np.exp(-(distance**2) / (2.0 * np.maximum(area, 1e-12) * k**2))
    return _summarize(similarity, counted)
