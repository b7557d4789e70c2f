"""Pose fidelity: how well images follow the poses they were conditioned on.

A detector reads the pose back from each image (the toy detector for synthetic figures, MediaPipe for
photo-like images); PCK@0.1 and OKS against the conditioning pose, per joint and overall, and the rate of
left/right swaps (a pair whose two predictions each land nearer the other side's target joint).

Several people: each person of the conditioning pose is looked for in a crop around the place that
person should be (top-down, as pose benchmarks do with ground-truth boxes), so detected people are matched
to the figures asked for by place; PCK is reported per person as well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posedraw.errors import DetectionError, PosedrawError
from posedraw.pose import JOINTS, Pose, oks, pad_to_square, pck, resize

PAIRS = [(JOINTS.index(n), JOINTS.index(n.replace("left_", "right_"))) for n in JOINTS if n.startswith("left_")]


@dataclass(frozen=True)
class FidelityReport:
    images: int
    pck: float
    oks: float
    swap_rate: float
    per_joint_pck: dict[str, float | None]
    per_person_pck: list[float]  # every person of every image, in order

    @property
    def people(self) -> int:
        return len(self.per_person_pck)

    @property
    def person_pck(self) -> float:
        """Mean over people of each person's PCK@0.1 (every figure counts the same, whatever its joints)."""
        return float(np.mean(self.per_person_pck)) if self.per_person_pck else float("nan")

    def as_dict(self) -> dict:
        return {"images": self.images, "people": self.people, "pck@0.1": round(self.pck, 4),
                "person_pck@0.1": round(self.person_pck, 4), "oks": round(self.oks, 4),
                "left_right_swap_rate": round(self.swap_rate, 4), "per_joint_pck@0.1": self.per_joint_pck}  # fmt: skip


def swaps(predicted: Pose, target: Pose) -> tuple[int, int]:
    """(swapped pairs, pairs compared) over every person: both sides present in both poses."""
    swapped = compared = 0
    for person in range(target.num_people):
        for left, right in PAIRS:
            pair = [left, right]
            if not (predicted.present[person, pair].all() and target.present[person, pair].all()):
                continue
            p, t = predicted.xy[person], target.xy[person]
            straight = np.linalg.norm(p[left] - t[left]) + np.linalg.norm(p[right] - t[right])
            crossed = np.linalg.norm(p[left] - t[right]) + np.linalg.norm(p[right] - t[left])
            compared += 1
            swapped += bool(crossed < straight and np.linalg.norm(t[left] - t[right]) > 1e-6)
    return swapped, compared


def in_image_frame(pose: Pose, width: float, height: float) -> Pose:
    """The conditioning pose in the generated image's frame (poses are padded to a square, as images are)."""
    return resize(pad_to_square(pose), width, height)


def with_people(pose: Pose, people: int) -> Pose:
    """`pose` with exactly `people` people: a detector that found fewer gets people with every joint missing
    (each counts as missed), and the extra ones it found are not scored."""
    if pose.num_people == people:
        return pose
    missing = Pose(np.zeros((people, 17, 2)), np.zeros((people, 17), dtype=np.int64), pose.width, pose.height)
    found = [pose.person(p) for p in range(min(people, pose.num_people))]
    return Pose.stack(found + [missing.person(p) for p in range(len(found), people)])


def fidelity(predicted: Sequence[Pose], targets: Sequence[Pose]) -> FidelityReport:
    """Aggregate PCK@0.1 / OKS over all joints of all images, per joint too, and the swap rate."""
    hits = np.zeros(len(JOINTS))
    counts = np.zeros(len(JOINTS))
    oks_sum = oks_count = swapped = compared = 0.0
    per_person: list[float] = []
    for p, t in zip(predicted, targets):
        p = with_people(p, t.num_people)
        for person in range(t.num_people):
            scores = pck(p.person(person), t.person(person), 0.1)
            counted = t.present[person]
            hits += np.nan_to_num(scores.per_joint) * counted
            counts += counted
            if scores.count:
                per_person.append(scores.mean)
        o = oks(p, t)
        if o.count:
            oks_sum += o.mean * o.count
            oks_count += o.count
        s, c = swaps(p, t)
        swapped, compared = swapped + s, compared + c
    per_joint = {n: (None if counts[i] == 0 else round(float(hits[i] / counts[i]), 4)) for i, n in enumerate(JOINTS)}
    return FidelityReport(
        images=len(targets),
        pck=float(hits.sum() / max(counts.sum(), 1)),
        oks=float(oks_sum / max(oks_count, 1)),
        swap_rate=float(swapped / max(compared, 1)),
        per_joint_pck=per_joint,
        per_person_pck=per_person,
    )


#: a detector: images (B, 3, H, W) in [-1, 1] and their targets (in the images' frame) -> one pose each
Detector = Callable[[torch.Tensor, Sequence[Pose]], list[Pose]]


def require_mediapipe() -> None:
    """A missing MediaPipe is one line saying how to install it, before any image is read (the detector
    itself raises the same error type for an image without a person, which scoring counts as all missed)."""
    try:
        import mediapipe.python.solutions.pose  # noqa: F401
    except ImportError:
        raise DetectionError(
            "--detector mediapipe: needs the optional MediaPipe dependency: pip install 'posedraw[detect]'"
        ) from None


def load_detector(name: str) -> Detector:
    """`toy` (the shipped toy detector), `mediapipe`, or the path of a toy pose detector's weights (`posedraw
    train pose-detector`). Everything that can fail before the first image (a missing MediaPipe, a missing or
    damaged weights file) fails here. An image whose target holds several people gets one detected person
    per target person, in the target's order (see the module docstring)."""
    if name == "mediapipe":
        require_mediapipe()
        return _detect_mediapipe
    from posedraw.eval import toy_detector

    if name == "toy":
        return _toy_people(toy_detector.load_detector())
    if not Path(name).is_file():
        raise PosedrawError(f"--detector: expected toy, mediapipe or a toy pose detector's weights file, got {name!r}")
    return _toy_people(toy_detector.load_detector(Path(name)))


def _toy_people(model: torch.nn.Module) -> Detector:
    from posedraw.eval.toy_detector import detect_toy_people, detect_toy_poses

    def run(images: torch.Tensor, targets: Sequence[Pose]) -> list[Pose]:
        images = images.float().cpu()
        found = detect_toy_poses(model, images, images.shape[-1], images.shape[-2])
        for i, target in enumerate(targets):
            if target.num_people > 1:
                found[i] = detect_toy_people(model, images[i], target)
        return found

    return run


def _detect_mediapipe(images: torch.Tensor, targets: Sequence[Pose] = ()) -> list[Pose]:
    from posedraw.data.images import to_image
    from posedraw.pose.detect import detect_pose

    height, width = images.shape[-2:]
    found = []
    for image in images:
        try:
            found.append(detect_pose(np.asarray(to_image(image))))
        except DetectionError:  # nobody found (MediaPipe is known to be there): every joint counts as missed
            found.append(Pose.single(np.zeros((17, 2)), width, height, state=np.zeros(17)))
    return found


def detect(images: torch.Tensor, detector: str, targets: Sequence[Pose] | None = None) -> list[Pose]:
    """Poses found in images (B, 3, H, W) in [-1, 1] by the detector called `detector` (see
    `load_detector`); with `targets`, one detected person per target person."""
    return load_detector(detector)(images, list(targets or []))


def evaluate_pipeline(
    pipeline, poses: Sequence[Pose], seeds: Sequence[int], detector: str = "toy", **sampling
) -> FidelityReport:
    """Generate one image per (pose, seed) and measure how well the images follow the poses."""
    images = pipeline(list(poses), seeds=list(seeds), **sampling).images
    size = images.shape[-1]
    targets = [in_image_frame(p, size, images.shape[-2]) for p in poses]
    return fidelity(detect(images, detector, targets), targets)
