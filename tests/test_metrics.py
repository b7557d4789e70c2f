import numpy as np
import pytest

from posedraw.errors import PoseError
from posedraw.pose import JOINTS, JointState, Pose, oks, pck
from posedraw.pose.schema import COCO_SIGMAS


def _target() -> Pose:
    xy = np.stack([np.linspace(0, 100, 17), np.linspace(0, 200, 17)], axis=1)  # bbox 100 x 200
    return Pose.single(xy, 256, 256)


def test_identical_poses_score_one():
    target = _target()
    assert pck(target, target).mean == 1.0
    assert oks(target, target).mean == pytest.approx(1.0)


def test_pck_threshold_is_alpha_times_the_larger_bbox_side():
    target = _target()
    moved = target.xy.copy()
    moved[0, 0, 0] += 19.9  # within 0.1 * 200
    moved[0, 1, 0] += 20.1  # beyond
    scores = pck(target.replace(xy=moved), target, alpha=0.1)
    assert scores.per_joint[0] == 1.0 and scores.per_joint[1] == 0.0
    assert scores.mean == pytest.approx(16 / 17)


def test_absent_target_joints_are_ignored_and_missing_predictions_are_misses():
    target = _target()
    state = np.full((1, 17), JointState.VISIBLE)
    state[0, 3] = JointState.ABSENT
    scores = pck(target, target.replace(state=state))
    assert np.isnan(scores.per_joint[3]) and scores.count == 16 and scores.mean == 1.0
    scores = pck(target.replace(state=state), target)
    assert scores.per_joint[3] == 0.0 and scores.count == 17


def test_oks_follows_the_coco_formula():
    target = _target()
    moved = target.xy.copy()
    moved[0, JOINTS.index("left_hip"), 1] += 10.0
    scores = oks(target.replace(xy=moved), target)
    k = 2 * COCO_SIGMAS[JOINTS.index("left_hip")]
    expected = np.exp(-(10.0**2) / (2 * 100 * 200 * k**2))
    assert scores.per_joint[JOINTS.index("left_hip")] == pytest.approx(expected)
    assert scores.mean == pytest.approx((16 + expected) / 17)


def test_predictions_on_another_canvas_are_scaled_to_the_target():
    target = _target()
    half = Pose(target.xy / 2, target.state, 128, 128)
    assert pck(half, target).mean == 1.0


def test_people_counts_must_match():
    with pytest.raises(PoseError, match="people"):
        pck(Pose.stack([_target(), _target()]), _target())
