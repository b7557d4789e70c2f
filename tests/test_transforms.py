import numpy as np
import pytest
from hypothesis import given

from posedraw.errors import PoseError
from posedraw.pose import JOINTS, JointState, Pose, crop, flip_horizontal, pad, pad_to_square, resize
from posedraw.pose.transforms import square_padding

from .conftest import poses


def _pose_at(points: dict[str, tuple[float, float]], width: float = 100, height: float = 50) -> Pose:
    xy = np.full((17, 2), 25.0)
    for name, point in points.items():
        xy[JOINTS.index(name)] = point
    return Pose.single(xy, width, height)


def test_flip_mirrors_x_and_swaps_sides():
    pose = _pose_at({"left_wrist": (10.0, 20.0), "right_wrist": (70.0, 30.0)})
    flipped = flip_horizontal(pose)
    assert flipped.xy[0, JOINTS.index("right_wrist")].tolist() == [90.0, 20.0]
    assert flipped.xy[0, JOINTS.index("left_wrist")].tolist() == [30.0, 30.0]


@given(poses())
def test_flipping_twice_gives_the_pose_back_for_joints_inside(pose):
    inside = pose.replace(state=np.where(pose.inside_canvas(), pose.state, JointState.ABSENT))
    assert flip_horizontal(flip_horizontal(inside)).allclose(inside, atol=1e-9)


def test_crop_makes_joints_outside_absent_instead_of_clamping():
    pose = _pose_at({"nose": (5.0, 5.0), "left_ankle": (80.0, 40.0)})
    cropped = crop(pose, 10, 0, 80, 50)
    assert cropped.state[0, JOINTS.index("nose")] == JointState.ABSENT
    assert cropped.xy[0, JOINTS.index("left_ankle")].tolist() == [70.0, 40.0]
    assert cropped.canvas == (80.0, 50.0)


def test_resize_scales_each_axis():
    pose = _pose_at({"nose": (50.0, 10.0)})
    resized = resize(pose, 200, 200)
    assert resized.xy[0, 0].tolist() == [100.0, 40.0]
    with pytest.raises(PoseError):
        resize(pose, 0, 10)


def test_pad_to_square_centres_the_canvas():
    assert square_padding(100, 50) == (0, 25, 0, 25)
    assert square_padding(51, 100) == (24, 0, 25, 0)
    padded = pad_to_square(_pose_at({"nose": (50.0, 10.0)}))
    assert padded.canvas == (100.0, 100.0)
    assert padded.xy[0, 0].tolist() == [50.0, 35.0]


def test_negative_padding_crops():
    pose = _pose_at({"nose": (2.0, 2.0)})
    assert pad(pose, -5, 0, 0, 0).state[0, 0] == JointState.ABSENT


@given(poses(max_people=2))
def test_transforms_never_leave_a_present_joint_outside_the_canvas(pose):
    for out in (flip_horizontal(pose), pad_to_square(pose), resize(pose, 64, 32), crop(pose, 3, 4, 10, 10)):
        assert (out.inside_canvas() == out.present).all()
