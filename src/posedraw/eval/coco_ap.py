"""COCO keypoint AP and AR of re-detected people, computed by pycocotools (the field's reference code).

HumanSD's protocol scores a pose-conditioned generator by detecting people on its drawings and scoring
the detections against the poses it was asked for, as COCO scores a keypoint detector: each asked-for
person is a ground-truth annotation, each detected person a detection with a score; pycocotools matches
them by object keypoint similarity (OKS) at thresholds 0.50:0.05:0.95 and reports average precision and
recall. The dictionaries are built in memory; nothing is written.

Two choices a COCO file would otherwise make:
- a person's area (OKS's scale s^2) is the area of the bounding box of its present joints, as
  `posedraw.pose.metrics.oks` uses (COCO uses the segmentation area, which a pose does not have; a box
  is larger, so the same error scores a little higher here than on COCO);
- a joint the detector did not find is placed far outside the image, so it counts as a miss (COCO result
  files always give all 17 positions; posedraw's detectors mark missing joints absent instead).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from posedraw.errors import PosedrawError
from posedraw.pose import JOINTS, Pose
from posedraw.pose.schema import COCO_SIGMAS

#: the entries of COCOeval.stats kept, by name (the medium/large-area ones need people of 32+ px)
STATS = {"ap": 0, "ap50": 1, "ap75": 2, "ar": 5, "ar50": 6, "ar75": 7}
#: how far outside the canvas (in canvas sides) a joint the detector did not find is placed
_MISSING = -10.0


def person_box(xy: np.ndarray, present: np.ndarray) -> list[float]:
    """[x, y, width, height] of the bounding box of the present joints."""
    points = xy[present]
    low, high = points.min(axis=0), points.max(axis=0)
    return [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]


def coco_ground_truth(targets: Sequence[Pose]) -> dict:
    """A COCO keypoint dataset (image i has id i + 1) whose people are the asked-for people of `targets`
    (poses in their image's frame); a person without a present joint is left out (it cannot be drawn)."""
    images, annotations = [], []
    for index, target in enumerate(targets):
        images.append({"id": index + 1, "width": target.width, "height": target.height})
        for person in range(target.num_people):
            present = target.present[person]
            if not present.any():
                continue
            box = person_box(target.xy[person], present)
            keypoints = np.concatenate([np.where(present[:, None], target.xy[person], 0.0),
                                        target.state[person][:, None]], axis=1)  # fmt: skip
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": 1, "iscrowd": 0,
                "keypoints": keypoints.ravel().tolist(), "num_keypoints": int(present.sum()),
                "bbox": box, "area": box[2] * box[3],
            })  # fmt: skip
    category = {"id": 1, "name": "person", "keypoints": list(JOINTS), "skeleton": []}
    return {"images": images, "annotations": annotations, "categories": [category]}


def detection_score(pose: Pose, person: int) -> float:
    """A detected person's score: the mean confidence over the 17 joints (a joint not found adds 0); the
    share of joints found when the detector gives no confidences."""
    present = pose.present[person]
    if pose.confidence is None:
        return float(present.mean())
    return float(np.where(present, pose.confidence[person], 0.0).mean())


def coco_detections(detected: Sequence[Pose], min_joints: int = 1) -> list[dict]:
    """COCO keypoint results for image i + 1 from the people of detected[i] that have at least
    `min_joints` present joints (a detector's person with fewer is no detection)."""
    results = []
    for index, pose in enumerate(detected):
        for person in range(pose.num_people):
            present = pose.present[person]
            if present.sum() < min_joints:
                continue
            xy = np.where(present[:, None], pose.xy[person], _MISSING * max(pose.width, pose.height))
            keypoints = np.concatenate([xy, np.where(present, 2.0, 0.0)[:, None]], axis=1)
            results.append({"image_id": index + 1, "category_id": 1, "keypoints": keypoints.ravel().tolist(),
                            "score": detection_score(pose, person)})  # fmt: skip
    return results


def keypoint_ap(ground_truth: dict, detections: list[dict], image_ids: Sequence[int] | None = None) -> dict:
    """AP, AP50, AP75, AR, AR50 and AR75 of `detections` against `ground_truth` over `image_ids` (default:
    every image), by pycocotools' COCOeval with the COCO-17 sigmas. None where no person was asked for."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise PosedrawError("COCO AP needs pycocotools: pip install pycocotools") from None
    ids = [image["id"] for image in ground_truth["images"]] if image_ids is None else list(image_ids)
    wanted = set(ids)
    if not any(a["image_id"] in wanted for a in ground_truth["annotations"]):
        return dict.fromkeys(STATS)
    chosen = [d for d in detections if d["image_id"] in wanted]
    if not chosen:  # pycocotools cannot load an empty result list; nothing found means nothing recalled
        return dict.fromkeys(STATS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = ground_truth
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(chosen), iouType="keypoints")
        evaluation.params.imgIds = ids
        evaluation.params.kpt_oks_sigmas = np.asarray(COCO_SIGMAS, dtype=np.float64)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(evaluation.stats[index]) for name, index in STATS.items()}
