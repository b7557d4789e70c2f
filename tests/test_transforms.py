import numpy as np
import pytest
from hypothesis import given

from posedraw.errors import PoseError
from posedraw.pose import JOINTS, JointState, Part, Pose, crop, flip_horizontal, pad, pad_to_square, resize
from posedraw.pose.transforms import drop_outside, square_padding

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
    inside = drop_outside(pose)
    twice = flip_horizontal(flip_horizontal(inside))
    assert twice.allclose(inside, atol=1e-9)
    assert list(twice.parts) == [name for name in inside.parts]  # the hands come back to their own sides


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
        assert len(out.parts) == len(pose.parts)  # a flip renames the hands
        for part in out.parts.values():
            assert (part.inside(out.width, out.height) == part.present).all()


# --- parts -----------------------------------------------------------------------------------------------
def _pose_with_parts(width: float = 100, height: float = 50) -> Pose:
    hand = np.stack([np.linspace(5, 25, 21), np.linspace(10, 30, 21)], axis=1)
    face = np.stack([np.linspace(40, 60, 70), np.full(70, 10.0)], axis=1)
    feet = np.array([[10.0, 45.0], [12, 45], [8, 44], [90, 45], [88, 45], [92, 44]])
    parts = {
        "left_hand": Part(hand[None], np.full((1, 21), 2), np.linspace(0, 1, 21)[None]),
        "face": Part(face[None], np.full((1, 70), 2)),
        "feet": Part(feet[None], np.array([[2, 2, 2, 1, 0, 2]])),
        "torso": Part(np.array([[[50.0, 20.0], [50.0, 35.0]]]), np.full((1, 2), 2)),
    }
    return _pose_at({}, width, height).replace(parts=parts)


def test_flip_turns_the_left_hand_into_the_right_and_swaps_feet_and_face_twins():
    pose = _pose_with_parts()
    flipped = flip_horizontal(pose)
    assert "left_hand" not in flipped.parts
    hand = flipped.parts["right_hand"]
    assert hand.xy[0, 0].tolist() == [95.0, 10.0] and hand.confidence[0, 20] == 1.0
    feet = flipped.parts["feet"]
    assert feet.xy[0, 0].tolist() == [10.0, 45.0] and feet.state[0].tolist() == [1, 0, 2, 2, 2, 2]
    face, source = flipped.parts["face"].xy[0], pose.parts["face"].xy[0]
    assert (
        face[0, 0] == 100 - source[16, 0] and face[36, 0] == 100 - source[45, 0] and face[68, 0] == 100 - source[69, 0]
    )
    assert flipped.parts["torso"].xy[0].tolist() == [[50.0, 20.0], [50.0, 35.0]]


def test_resize_crop_and_pad_move_parts_with_the_body():
    pose = _pose_with_parts()
    assert resize(pose, 200, 100).parts["left_hand"].xy[0, 0].tolist() == [10.0, 20.0]
    cropped = crop(pose, 20, 0, 80, 50)
    hand = cropped.parts["left_hand"]
    assert not hand.present[0, 0] and hand.xy[0, 20].tolist() == [5.0, 30.0]
    assert pad_to_square(pose).parts["face"].xy[0, 0].tolist() == [40.0, 35.0]
    assert drop_outside(pose.replace(width=30)).parts["face"].present.sum() == 0
