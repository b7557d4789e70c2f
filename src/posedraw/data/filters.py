"""Filters for real training data, each with a reason recorded in the manifest.

Skeleton plausibility thresholds are learned from the data's own statistics (as the original author did
by plotting joint positions): each limb's length relative to the torso is compared with the median and
the median absolute deviation of that ratio over all input poses. Only limbs that are too long count:
a limb seen end-on (foreshortened) looks short in any honest drawing, while one far longer than the
torso allows is a detection error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from posedraw.pose import Pose
from posedraw.pose.schema import JOINT_INDEX

LIMBS = {
    f"{side}_{name}": (f"{side}_{a}", f"{side}_{b}")
    for side in ("left", "right")
    for name, (a, b) in {
        "upper_arm": ("shoulder", "elbow"),
        "forearm": ("elbow", "wrist"),
        "thigh": ("hip", "knee"),
        "shin": ("knee", "ankle"),
    }.items()
}


@dataclass(frozen=True)
class FilterConfig:
    min_image_side: int = 128
    min_visible_joints: int = 10
    limb_mad_factor: float = 6.0  # limbs further than this many MADs from the median ratio are implausible
    max_outside: float = 0.25  # joints more than this fraction of the canvas outside it are implausible
    max_border: float = 0.5  # images whose uniform borders cover more than this fraction are skipped
    ratings: tuple[str, ...] = ()  # keep only these ratings (empty: any)
    include_tags: tuple[str, ...] = ()  # keep only samples with one of these tags (empty: any)
    exclude_tags: tuple[str, ...] = ()
    check_skeleton: bool = True
    check_borders: bool = True


@dataclass(frozen=True)
class LimbStatistics:
    """Median and MAD of each limb's length divided by the torso length (mid-shoulder to mid-hip)."""

    median: dict[str, float] = field(default_factory=dict)
    mad: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def learn(poses: Iterable[Pose]) -> LimbStatistics:
        """From every person of every pose."""
        ratios: dict[str, list[float]] = {name: [] for name in LIMBS}
        for pose in poses:
            for person in range(pose.num_people):
                one = pose.person(person)
                torso = torso_length(one)
                if torso is None:
                    continue
                for name, length in _limbs(one).items():
                    ratios[name].append(length / torso)
        median = {n: float(np.median(v)) for n, v in ratios.items() if len(v) >= 5}
        mad = {n: float(np.median(np.abs(np.array(ratios[n]) - median[n]))) for n in median}
        return LimbStatistics(median, mad)


def _point(pose: Pose, name: str) -> np.ndarray | None:
    return pose.xy[0, JOINT_INDEX[name]] if pose.present[0, JOINT_INDEX[name]] else None


def torso_length(pose: Pose) -> float | None:
    """Distance from the first person's shoulders' midpoint to the hips' (a figure's scale); None without all four."""
    points = [_point(pose, n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    if any(p is None for p in points):
        return None
    length = float(np.linalg.norm((points[0] + points[1]) / 2 - (points[2] + points[3]) / 2))
    return length if length > 1e-6 else None


def _limbs(pose: Pose) -> dict[str, float]:
    lengths = {}
    for name, (a, b) in LIMBS.items():
        pa, pb = _point(pose, a), _point(pose, b)
        if pa is not None and pb is not None:
            lengths[name] = float(np.linalg.norm(pa - pb))
    return lengths


def skeleton_problem(pose: Pose, stats: LimbStatistics, config: FilterConfig) -> str | None:
    """Why a pose is implausible (any of its people), or None."""
    for person in range(pose.num_people):
        problem = _person_problem(pose.person(person), stats, config)
        if problem:
            return problem if pose.num_people == 1 else f"person {person}: {problem}"
    return None


def _person_problem(pose: Pose, stats: LimbStatistics, config: FilterConfig) -> str | None:
    """Why a one-person pose is implausible, or None."""
    margin = config.max_outside * max(pose.width, pose.height)
    xy = pose.xy[0][pose.present[0]]
    limit = np.array([pose.width, pose.height]) + margin
    if len(xy) and ((xy < -margin).any() or (xy > limit).any()):
        return "joints far outside the frame"
    shoulders = [_point(pose, n) for n in ("left_shoulder", "right_shoulder")]
    hips = [_point(pose, n) for n in ("left_hip", "right_hip")]
    complete = all(p is not None for p in shoulders + hips)
    if complete and max(h[1] for h in hips) < min(s[1] for s in shoulders):  # type: ignore[index]
        return "hips above shoulders"
    torso = torso_length(pose)
    if torso is not None:
        for name, length in _limbs(pose).items():
            if name in stats.median:
                spread = max(stats.mad[name], 0.1 * stats.median[name])
                if length / torso - stats.median[name] > config.limb_mad_factor * spread:
                    return f"implausible {name.replace('_', ' ')} length"
    return None


def uniform_border_fraction(image: Image.Image, tolerance: float = 4.0) -> float:
    """Fraction of the image area in flat bands of one colour at its edges (letterboxing, padding).

    A band runs inward from an edge while each row (column) is flat and has the edge's colour, so a smooth
    background gradient, whose rows are flat but change colour, is not mistaken for padding.
    """
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)

    def run(lines: np.ndarray) -> int:  # lines: (n, length, 3), the first one at the edge
        flat = (lines.std(axis=1) <= tolerance).all(axis=-1)
        same = (np.abs(lines.mean(axis=1) - lines[0].mean(axis=0)) <= tolerance).all(axis=-1)
        band = flat & same
        return int(np.argmin(band)) if not band.all() else len(band)

    top, bottom = run(pixels), run(pixels[::-1])
    columns = pixels.transpose(1, 0, 2)
    left, right = run(columns), run(columns[::-1])
    h, w = pixels.shape[:2]
    kept = max(0, h - top - bottom) * max(0, w - left - right)
    return 1.0 - kept / (h * w)


def metadata_problem(tags: list[str], rating: str | None, config: FilterConfig) -> str | None:
    if config.ratings and rating is None:
        return "no rating in the metadata"
    if config.ratings and rating not in config.ratings:
        return f"rating {rating} not in {list(config.ratings)}"
    if config.include_tags and not set(tags) & set(config.include_tags):
        return "none of the wanted tags"
    excluded = sorted(set(tags) & set(config.exclude_tags))
    if excluded:
        return f"excluded tag {excluded[0]}"
    return None
