import numpy as np
import torch
from PIL import Image

from posedraw.pose import JOINTS, JointState, Part, Pose, draw_pose, render_heatmaps, render_skeleton
from posedraw.pose.render import FACE_COLOUR, FOOT_COLOURS, HAND_COLOURS, LIMB_COLOURS, gaussian_heatmaps, line_width
from posedraw.pose.schema import FOOT_BONES, LIMBS


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


def _with_parts() -> Pose:
    """The figure with a left hand whose fingers run right in rows, a face dot, and a left big toe."""
    hand = np.zeros((21, 2))
    hand[0] = (20, 40)
    for finger in range(5):
        for k in range(4):
            hand[1 + 4 * finger + k] = (30 + 10 * k, 10 + 10 * finger)
    face = np.full((68, 2), 150.0)
    feet_state = np.array([2, 0, 0, 0, 0, 0])
    feet = np.zeros((6, 2))
    feet[0] = (150, 190)
    parts = {
        "left_hand": Part(hand[None], np.full((1, 21), 2)),
        "face": Part(face[None], np.full((1, 68), 2)),
        "feet": Part(feet[None], feet_state[None]),
    }
    return _figure().replace(parts=parts)


def test_hand_bones_are_drawn_finger_by_finger_in_distinct_colours():
    image = np.asarray(render_skeleton(_with_parts()))
    drawn = []
    for finger in range(5):
        bone = 4 * finger + 2  # from the finger's second point to its third: (40, y) - (50, y)
        colour = tuple(image[10 + 10 * finger, 45])
        assert colour == HAND_COLOURS[bone], finger
        drawn.append(colour)
    assert len(set(drawn)) == 5


def test_face_points_are_light_dots_and_feet_bones_join_the_ankle():
    image = np.asarray(render_skeleton(_with_parts()))
    assert tuple(image[150, 150]) == FACE_COLOUR
    assert tuple(image[190, 140]) == FOOT_COLOURS[FOOT_BONES.index(("left_ankle", "left_big_toe"))]
    assert image[190, 95:110].max() == 0  # absent foot points draw nothing


def test_parts_do_not_change_the_body_drawing():
    with_parts, body = np.asarray(render_skeleton(_with_parts())), np.asarray(render_skeleton(_figure()))
    assert tuple(with_parts[112, 155]) == tuple(body[112, 155]) == _limb_colour("left_elbow", "left_wrist")


def test_the_gaussian_kernel_is_its_formula_measured_from_pixel_centres():
    """weight * exp(-d^2 / (2 sigma^2)), d from the centre of each pixel: a joint at (1.5, 0.5) is the peak of
    pixel (row 0, column 1)."""
    maps = gaussian_heatmaps(torch.tensor([[1.5, 0.5]]), torch.tensor([0.5]), 3, 4, 2.0)
    rows, cols = torch.meshgrid(torch.arange(3) + 0.5, torch.arange(4) + 0.5, indexing="ij")
    expected = 0.5 * torch.exp(-((cols - 1.5) ** 2 + (rows - 0.5) ** 2) / 8.0)
    torch.testing.assert_close(maps, expected[None], rtol=0, atol=1e-7)
    assert maps[0].argmax().item() == 1
