import numpy as np
import pytest

from posedraw.errors import PoseError
from posedraw.pose import JOINTS, NUM_JOINTS, JointState, Pose
from posedraw.pose.schema import FLIP_PERMUTATION


def _standing(width: float = 100, height: float = 200) -> Pose:
    xy = np.stack([np.linspace(10, 90, NUM_JOINTS), np.linspace(20, 180, NUM_JOINTS)], axis=1)
    return Pose.single(xy, width, height)


def test_pose_arrays_are_read_only_copies():
    source = np.zeros((1, NUM_JOINTS, 2))
    pose = Pose(source, np.full((1, NUM_JOINTS), 2), 64, 64)
    source[0, 0] = 5.0
    assert pose.xy[0, 0, 0] == 0.0
    with pytest.raises(ValueError):
        pose.xy[0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        pose.width = 3  # type: ignore[misc]


def test_absent_joints_have_no_position():
    state = np.full(NUM_JOINTS, JointState.VISIBLE)
    state[3] = JointState.ABSENT
    pose = Pose.single(np.ones((NUM_JOINTS, 2)), 10, 10, state=state)
    assert np.isnan(pose.xy[0, 3]).all()
    assert not np.isnan(np.delete(pose.xy[0], 3, axis=0)).any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"width": 0}, "canvas width"),
        ({"height": float("nan")}, "canvas height"),
        ({"width": True}, "canvas width"),
        ({"state": np.full((1, NUM_JOINTS), 3)}, "state"),
        ({"xy": np.zeros((1, 16, 2))}, "xy"),
        ({"xy": np.full((1, NUM_JOINTS, 2), np.inf)}, "finite"),
        ({"confidence": -np.ones((1, NUM_JOINTS))}, "confidence"),
    ],
)
def test_invalid_poses_are_rejected_with_the_field_named(change, message):
    with pytest.raises(PoseError, match=message):
        _standing().replace(**change)


def test_flip_permutation_swaps_every_left_joint_with_its_right_twin():
    for i, j in enumerate(FLIP_PERMUTATION):
        name, twin = JOINTS[i], JOINTS[j]
        assert twin == name.replace("left_", "@").replace("right_", "left_").replace("@", "right_")
    assert (FLIP_PERMUTATION[FLIP_PERMUTATION] == np.arange(NUM_JOINTS)).all()


def test_person_and_stack_round_trip():
    a, b = _standing(), _standing().replace(xy=_standing().xy + 1)
    both = Pose.stack([a, b])
    assert both.num_people == 2
    assert both.person(1).allclose(b) and both.person(-2).allclose(a)
    with pytest.raises(PoseError):
        both.person(2)
    with pytest.raises(PoseError, match="different canvases"):
        Pose.stack([a, _standing(50, 50)])
