import numpy as np
import pytest

from posedraw.errors import PoseError
from posedraw.pose import JOINTS, NUM_JOINTS, JointState, Part, Pose
from posedraw.pose.core import MAX_CANVAS, MAX_COORDINATE
from posedraw.pose.schema import FLIP_PERMUTATION, part_flip_permutation


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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"width": 0.5}, "canvas width: expected a size from 1 to 100000 pixels"),
        ({"height": MAX_CANVAS * 1.01}, "canvas height: expected a size from 1 to 100000 pixels"),
        ({"width": 1e308}, "canvas width"),
        ({"xy": np.full((1, NUM_JOINTS, 2), 1e308)}, "xy: expected coordinates from -1000000 to 1000000 pixels"),
        ({"xy": np.full((1, NUM_JOINTS, 2), -MAX_COORDINATE - 1)}, "xy: expected coordinates from"),
    ],
)
def test_canvas_sizes_and_coordinates_have_a_finite_range(change, message):
    with pytest.raises(PoseError, match=message.replace("(", r"\(")):
        _standing().replace(**change)
    with pytest.raises(PoseError, match="part xy: expected coordinates from"):
        Part(np.full((1, 6, 2), 2e6), np.full((1, 6), 2))


def test_the_range_s_edges_are_poses():
    """1 to 100000 pixels a side, coordinates within a million pixels of the origin (absent joints: NaN)."""
    xy = np.full((NUM_JOINTS, 2), MAX_COORDINATE)
    xy[1] = -MAX_COORDINATE
    assert Pose.single(xy, 1, MAX_CANVAS).canvas == (1.0, MAX_CANVAS)
    state = np.full(NUM_JOINTS, JointState.VISIBLE)
    state[0] = JointState.ABSENT
    xy[0] = 1e308  # an absent joint's position is dropped, not checked
    assert np.isnan(Pose.single(xy, 64, 64, state=state).xy[0, 0]).all()


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


# --- parts -----------------------------------------------------------------------------------------------
def _hand(offset: float = 0.0, people: int = 1) -> Part:
    xy = np.arange(people * 21 * 2, dtype=float).reshape(people, 21, 2) + offset
    return Part(xy, np.full((people, 21), JointState.VISIBLE))


def test_poses_have_no_parts_unless_given():
    pose = _standing()
    assert dict(pose.parts) == {} and dict(pose.replace(xy=pose.xy + 1).parts) == {}
    with_hand = Pose.single(pose.xy[0], 100, 200, parts={"left_hand": _hand()})
    assert list(with_hand.parts) == ["left_hand"] and with_hand.parts["left_hand"].num_points == 21
    with pytest.raises(TypeError):
        with_hand.parts["face"] = _hand()  # type: ignore[index]


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"tail": _hand()}, "unknown 'tail'"),
        ({"left_hand": Part(np.zeros((1, 20, 2)), np.full((1, 20), 2))}, "parts.left_hand: expected 21 points"),
        ({"face": Part(np.zeros((1, 69, 2)), np.full((1, 69), 2))}, "parts.face: expected 68 or 70 points"),
        ({"left_hand": _hand(people=2)}, "expected 1 people like the body"),
        ({"left_hand": np.zeros((1, 21, 2))}, "expected a Part"),
    ],
)
def test_invalid_parts_are_rejected_with_the_part_named(parts, message):
    with pytest.raises(PoseError, match=message):
        _standing().replace(parts=parts)


def test_part_points_are_validated_like_joints():
    with pytest.raises(PoseError, match="part state"):
        Part(np.zeros((1, 21, 2)), np.full((1, 21), 5))
    with pytest.raises(PoseError, match="part xy: coordinates of present joints must be finite"):
        Part(np.full((1, 21, 2), np.nan), np.full((1, 21), 2))
    assert np.isnan(Part(np.zeros((1, 2, 2)), [[0, 2]]).xy[0, 0]).all()


def test_a_pose_may_hold_nobody():
    empty = Pose(np.zeros((0, NUM_JOINTS, 2)), np.zeros((0, NUM_JOINTS)), 64, 32)
    assert empty.num_people == 0 and empty.allclose(empty)
    assert Pose.stack([empty, _standing(64, 32)]).num_people == 1


def test_person_stack_and_replace_keep_parts():
    a = Pose.single(
        _standing().xy[0],
        100,
        200,
        parts={"left_hand": _hand(), "face": Part(np.ones((1, 68, 2)), np.full((1, 68), 2))},
    )
    b = Pose.single(
        _standing().xy[0], 100, 200, parts={"face": Part(np.ones((1, 70, 2)), np.full((1, 70), 2), np.ones((1, 70)))}
    )
    both = Pose.stack([a, b])
    assert both.parts["face"].num_points == 70 and both.parts["face"].present[0].sum() == 68
    assert not both.parts["left_hand"].present[1].any()
    assert both.parts["face"].confidence is None  # a's face has none
    assert both.person(0).allclose(a) and both.person(1).allclose(b)
    assert both.replace(width=300).parts["left_hand"].present[0].all()


def test_allclose_compares_parts_and_takes_an_all_absent_part_for_none():
    a = Pose.single(_standing().xy[0], 100, 200, parts={"left_hand": _hand()})
    assert not a.allclose(a.replace(parts={"left_hand": _hand(0.5)}))
    assert a.allclose(a.replace(parts={"left_hand": _hand(0.5)}), atol=0.5)
    assert not a.allclose(_standing()) and not _standing().allclose(a)
    assert _standing().allclose(a.replace(parts={"left_hand": Part.absent(1, 21)}))


def test_face_flip_pairs_are_the_ibug_mirror_twins():
    flip = part_flip_permutation("face", 70)
    assert (flip[flip] == np.arange(70)).all()
    pairs = {0: 16, 8: 8, 17: 26, 21: 22, 27: 27, 30: 30, 31: 35, 33: 33, 36: 45, 39: 42, 40: 47, 41: 46,
             48: 54, 51: 51, 55: 59, 57: 57, 60: 64, 62: 62, 65: 67, 66: 66, 68: 69}  # fmt: skip
    for a, b in pairs.items():
        assert flip[a] == b and flip[b] == a
    assert (part_flip_permutation("face", 68) == flip[:68]).all()
    assert part_flip_permutation("feet", 6).tolist() == [3, 4, 5, 0, 1, 2]


def test_poses_with_parts_pickle_for_data_loader_workers():
    import pickle

    pose = Pose.single(_standing().xy[0], 100, 200, confidence=np.ones(NUM_JOINTS), parts={"left_hand": _hand()})
    back = pickle.loads(pickle.dumps(pose))
    assert back.allclose(pose) and list(back.parts) == ["left_hand"] and not back.xy.flags.writeable
