import numpy as np
import torch
from PIL import Image

from posedraw.pose import JOINTS, JointState, Pose, draw_pose, render_heatmaps, render_skeleton
from posedraw.pose.render import LIMB_COLOURS, line_width
from posedraw.pose.schema import LIMBS


def _figure(width: float = 200, height: float = 200) -> Pose:
    points = {
        "nose": (100, 30), "left_eye": (108, 24), "right_eye": (92, 24), "left_ear": (115, 28),
        "right_ear": (85, 28), "left_shoulder": (130, 60), "right_shoulder": (70, 60), "left_elbow": (150, 95),
        "right_elbow": (50, 95), "left_wrist": (160, 130), "right_wrist": (40, 130), "left_hip": (120, 120),
        "right_hip": (80, 120), "left_knee": (125, 155), "right_knee": (75, 155), "left_ankle": (128, 190),
        "right_ankle": (72, 190),
    }  # fmt: skip
    xy = np.array([points[j] for j in JOINTS], dtype=float) * [width / 200, height / 200]
    return Pose.single(xy, width, height)


def _limb_colour(a: str, b: str) -> tuple[int, int, int]:
    return LIMB_COLOURS[LIMBS.index((a, b))]


def test_skeleton_limbs_are_drawn_in_their_side_colours_at_their_place():
    image = np.asarray(render_skeleton(_figure()))
    # midpoint of the left forearm (150,95)-(160,130) and of the right forearm (50,95)-(40,130)
    assert tuple(image[112, 155]) == _limb_colour("left_elbow", "left_wrist")
    assert tuple(image[112, 45]) == _limb_colour("right_elbow", "right_wrist")
    assert _limb_colour("left_elbow", "left_wrist") != _limb_colour("right_elbow", "right_wrist")
    assert image[5:15, 5:15].max() == 0  # background stays black


def test_skeleton_size_and_line_width_scale_with_the_image():
    small = render_skeleton(_figure(), long_side=100)
    large = render_skeleton(_figure(), long_side=800)
    assert small.size == (100, 100) and large.size == (800, 800)
    assert line_width(800, 800) == 8 and line_width(100, 100) == 1
    ratio = (np.asarray(large).any(-1).sum() / 64) / np.asarray(small).any(-1).sum()
    assert 0.5 < ratio < 2.0  # drawn area grows with the square of the size


def test_absent_joints_are_not_drawn_and_occluded_are_dimmed():
    state = np.full(17, JointState.VISIBLE)
    state[JOINTS.index("left_wrist")] = JointState.ABSENT
    state[JOINTS.index("right_wrist")] = JointState.OCCLUDED
    pose = _figure().replace(state=state[None])
    image = np.asarray(render_skeleton(pose))
    assert image[112, 155].max() == 0
    dimmed = tuple(c // 2 for c in _limb_colour("right_elbow", "right_wrist"))
    assert tuple(image[112, 45]) == dimmed


def test_pose_over_an_image_keeps_the_picture_elsewhere():
    photo = Image.new("RGB", (400, 400), (10, 200, 30))
    drawn = np.asarray(draw_pose(photo, _figure()))
    assert tuple(drawn[10, 10]) == (10, 200, 30)
    assert tuple(drawn[224, 310]) == _limb_colour("left_elbow", "left_wrist")


def test_heatmaps_peak_at_each_joint_and_absent_joints_are_empty():
    state = np.full(17, JointState.VISIBLE)
    state[0] = JointState.ABSENT
    maps = render_heatmaps(_figure().replace(state=state[None]), 50, 50, sigma=1.0)
    assert maps.shape == (17, 50, 50) and maps.dtype == torch.float32
    assert maps[0].max() == 0
    left_wrist = maps[JOINTS.index("left_wrist")]
    # (160, 130) / 4 = (40.0, 32.5): row 32's centre, on the border of columns 39 and 40
    assert float(left_wrist[32, 39]) == float(left_wrist[32, 40]) == float(left_wrist.max())
    assert 0.8 < float(left_wrist.max()) <= 1.0


def test_moving_one_joint_changes_only_maps_near_it():
    pose = _figure()
    xy = pose.xy.copy()
    xy[0, JOINTS.index("left_knee")] += (8.0, 0.0)
    before = render_heatmaps(pose, 64, 64, sigma=1.0)
    after = render_heatmaps(pose.replace(xy=xy), 64, 64, sigma=1.0)
    changed = (before - after).abs() > 1e-6
    assert changed.any(dim=(1, 2)).nonzero().flatten().tolist() == [JOINTS.index("left_knee")]
    rows, cols = changed[JOINTS.index("left_knee")].nonzero(as_tuple=True)
    centre_x, centre_y = 125 * 64 / 200, 155 * 64 / 200
    assert (cols.float() - centre_x).abs().max() < 12 and (rows.float() - centre_y).abs().max() < 10
