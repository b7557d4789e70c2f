import json

import numpy as np
import pytest
from hypothesis import given

from posedraw.errors import PoseError
from posedraw.pose import JointState, Pose, legacy_tokens, pose_from_legacy_tokens, read_pose
from posedraw.pose.tokens import CELL

from .conftest import poses


def test_fixture_keypoint_files_give_the_reference_tokens_exactly(fixtures, keypoint_files):
    expected = json.loads((fixtures / "ldm_kp_f4_tiny" / "expected.json").read_text())["token_vectors"]
    assert set(expected) == set(keypoint_files)
    for stem, path in keypoint_files.items():
        tokens = legacy_tokens(read_pose(path))
        assert tokens.shape == (1, 17)
        assert tokens[0].tolist() == [int(v) for v in expected[stem]]


def test_token_is_row_bin_plus_32_times_column_bin():
    xy = np.zeros((17, 2))
    xy[0] = (100.0, 40.0)  # x (column) 100 -> bin 6, y (row) 40 -> bin 2
    assert legacy_tokens(Pose.single(xy, 512, 512))[0, 0] == 2 + 32 * 6


def test_positions_outside_the_canvas_clamp_to_border_cells():
    xy = np.full((17, 2), 256.0)
    xy[0] = (-30.0, 600.0)
    xy[1] = (700.0, -1.0)
    tokens = legacy_tokens(Pose.single(xy, 512, 512))[0]
    assert tokens[0] == 31 + 32 * 0
    assert tokens[1] == 0 + 32 * 31


def test_absent_joint_is_token_zero():
    state = np.full(17, JointState.VISIBLE)
    state[5] = JointState.ABSENT
    tokens = legacy_tokens(Pose.single(np.full((17, 2), 300.0), 512, 512, state=state))[0]
    assert tokens[5] == 0 and (np.delete(tokens, 5) != 0).all()


def test_non_square_canvas_is_padded_centred_before_binning():
    # 256 x 512 canvas: padded to 512 x 512 with 128 px left, then scaled by 1
    xy = np.full((17, 2), 8.0)
    tokens = legacy_tokens(Pose.single(xy, 256, 512))[0]
    assert tokens[0] == 0 + 32 * ((128 + 8) // 16)


@given(poses(max_people=2, states=(2,), square=True))
def test_tokens_to_pose_lands_within_half_a_cell_of_joints_inside_the_canvas(pose):
    back = pose_from_legacy_tokens(legacy_tokens(pose))
    xy512 = pose.xy * (512.0 / pose.width)
    inside = ((xy512 >= 0) & (xy512 < 512)).all(axis=-1)
    error = np.abs(back.xy - xy512)[inside]
    assert (error <= CELL / 2 + 1e-9).all()
    assert legacy_tokens(back).tolist() == legacy_tokens(pose).tolist()


@pytest.mark.parametrize("bad", [np.zeros(16), np.full(17, 1024), np.full(17, -1), np.full(17, 0.5)])
def test_invalid_tokens_are_rejected(bad):
    with pytest.raises(PoseError, match="tokens"):
        pose_from_legacy_tokens(bad)
