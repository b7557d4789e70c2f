import json

import numpy as np
import pytest
from hypothesis import assume, given

from posedraw.errors import PoseFormatError
from posedraw.pose import JOINTS, JointState, Pose, ReadOptions, detect_format, dump_pose, parse_pose, read_pose
from posedraw.pose import write_pose as write
from posedraw.pose.formats.openpose import LAYOUTS

from .conftest import poses


def _through(pose: Pose, fmt: str, options: ReadOptions | None = None) -> Pose:
    """Write to a JSON string and read back with format detection, as a user's file would go."""
    doc = json.loads(json.dumps(dump_pose(pose, fmt)))
    assert detect_format(doc) == fmt
    return parse_pose(doc, options=options)


# --- the original system's files -----------------------------------------------------------------------
def test_danbooru_file_reads_row_col_as_y_x_in_a_512_canvas(keypoint_files):
    pose = read_pose(keypoint_files["1000846"])
    assert pose.canvas == (512.0, 512.0)
    assert pose.xy[0, JOINTS.index("nose")].tolist() == pytest.approx([205.6, 93.2])
    assert (pose.state == JointState.VISIBLE).all() and pose.confidence is None


def test_original_files_survive_openpose_and_back_within_a_micro_pixel(keypoint_files, tmp_path):
    for stem, path in keypoint_files.items():
        original = json.loads(path.read_text())
        write(read_pose(path), tmp_path / f"{stem}.openpose.json", "openpose")
        write(read_pose(tmp_path / f"{stem}.openpose.json"), tmp_path / f"{stem}.json", "danbooru")
        back = json.loads((tmp_path / f"{stem}.json").read_text())
        assert set(back) == set(original)
        for name, (row, col) in original.items():
            assert abs(back[name][0] - row) <= 1e-6 and abs(back[name][1] - col) <= 1e-6


def test_danbooru_writer_scales_a_square_canvas_and_refuses_other_shapes():
    pose = Pose.single(np.full((17, 2), 128.0), 256, 256)
    doc = dump_pose(pose, "danbooru")
    assert doc["nose"] == [256.0, 256.0]
    with pytest.raises(PoseFormatError, match="square"):
        dump_pose(pose.replace(width=300), "danbooru")
    with pytest.raises(PoseFormatError, match="one person"):
        dump_pose(Pose.stack([pose, pose]), "danbooru")


def test_danbooru_unknown_joint_name_is_named():
    with pytest.raises(PoseFormatError, match="'left_eye'"):
        parse_pose({"nose": [1, 2], "left_eye": [3, 4]}, "danbooru")


# --- lossless round trips (property tests) ---------------------------------------------------------------
@given(poses())
def test_posedraw_format_is_lossless(pose):
    back = _through(pose, "posedraw")
    assert back.allclose(pose, atol=0.0)
    assert (back.confidence is None) == (pose.confidence is None)


@given(poses(states=(0, 1, 2), with_confidence=False))
def test_coco_annotations_keep_positions_and_all_three_states(pose):
    assert _through(pose, "coco").allclose(pose, atol=0.0)


@given(poses(states=(0, 2)))
def test_openpose_keeps_positions_presence_and_confidence(pose):
    back = _through(pose, "openpose", ReadOptions(coordinates="pixels"))
    assert np.array_equal(back.state, pose.state)
    assert np.allclose(back.xy, pose.xy, atol=1e-9, rtol=0, equal_nan=True)
    if pose.confidence is not None:
        expected = np.where(pose.present, np.maximum(pose.confidence, 1e-6), 0.0)
        assert np.allclose(back.confidence, expected, atol=0, rtol=0)


@given(poses(max_people=1, states=(0, 2), with_confidence=False, square=True))
def test_danbooru_keeps_positions_of_square_poses(pose):
    assume(pose.present.any())  # the format cannot store a pose without joints (the writer refuses it)
    back = _through(pose, "danbooru")
    scale = 512.0 / pose.width
    assert np.allclose(back.xy, pose.xy * scale, atol=1e-9, rtol=0, equal_nan=True)
    assert np.array_equal(back.state, pose.state)


# --- OpenPose specifics -------------------------------------------------------------------------------
def _openpose_person(layout_length: int, fill) -> dict:
    names = LAYOUTS[layout_length]
    flat = []
    for i, name in enumerate(names):
        flat += fill(i, name)
    return {"pose_keypoints_2d": flat}


def test_openpose_neck_is_derived_from_the_shoulders():
    xy = np.zeros((17, 2))
    xy[JOINTS.index("left_shoulder")] = (10.0, 20.0)
    xy[JOINTS.index("right_shoulder")] = (30.0, 40.0)
    flat = dump_pose(Pose.single(xy, 64, 64), "openpose")["people"][0]["pose_keypoints_2d"]
    assert flat[3:6] == [20.0, 30.0, 1.0]
    state = np.full(17, 2)
    state[JOINTS.index("right_shoulder")] = 0
    flat = dump_pose(Pose.single(xy, 64, 64, state=state), "openpose")["people"][0]["pose_keypoints_2d"]
    assert flat[3:6] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("length", sorted(LAYOUTS))
def test_openpose_layouts_map_joints_by_name(length):
    names = LAYOUTS[length]
    person = _openpose_person(length, lambda i, name: [float(i + 2), float(i + 3), 0.9])
    pose = parse_pose({"people": [person]}, options=ReadOptions(canvas=(64, 64)))
    for j, name in enumerate(JOINTS):
        assert pose.xy[0, j, 0] == names.index(name) + 2


def test_openpose_normalized_coordinates_with_canvas_fields_are_scaled():
    person = _openpose_person(18, lambda i, name: [0.5, 0.25, 1.0])
    pose = parse_pose({"people": [person], "canvas_width": 200, "canvas_height": 400})
    assert pose.xy[0, 0].tolist() == [100.0, 100.0]


def test_openpose_without_canvas_needs_the_canvas_option():
    person = _openpose_person(18, lambda i, name: [10.0, 20.0, 1.0])
    with pytest.raises(PoseFormatError, match="--canvas"):
        parse_pose({"people": [person]})
    assert parse_pose({"people": [person]}, options=ReadOptions(canvas=(64, 32))).canvas == (64.0, 32.0)


def test_openpose_ambiguous_coordinates_need_the_coords_option():
    person = _openpose_person(18, lambda i, name: [0.5, 0.5, 1.0])
    with pytest.raises(PoseFormatError, match="--coords"):
        parse_pose({"people": [person]}, options=ReadOptions(canvas=(64, 64)))
    pose = parse_pose({"people": [person]}, options=ReadOptions(canvas=(64, 64), coordinates="pixels"))
    assert pose.xy[0, 0].tolist() == [0.5, 0.5]
    pose = parse_pose({"people": [person]}, options=ReadOptions(canvas=(64, 64), coordinates="normalized"))
    assert pose.xy[0, 0].tolist() == [32.0, 32.0]


def test_openpose_zero_confidence_means_absent():
    person = _openpose_person(18, lambda i, name: [5.0, 5.0, 0.0 if name == "nose" else 0.7])
    pose = parse_pose({"people": [person], "canvas_width": 64, "canvas_height": 64})
    assert pose.state[0, 0] == JointState.ABSENT and (pose.state[0, 1:] == JointState.VISIBLE).all()


# --- COCO specifics -----------------------------------------------------------------------------------
def _coco_keypoints(v: int) -> list[float]:
    return [float(c) for j in range(17) for c in (j + 1.5, j + 2.5, v)]


def test_coco_visibility_flags_map_to_states():
    doc = {
        "images": [{"id": 7, "width": 640, "height": 480}],
        "annotations": [{"image_id": 7, "keypoints": _coco_keypoints(v)} for v in (0, 1, 2)],
    }
    pose = parse_pose(doc)
    assert pose.canvas == (640.0, 480.0)
    assert pose.state[:, 0].tolist() == [JointState.ABSENT, JointState.OCCLUDED, JointState.VISIBLE]


def test_coco_file_with_several_images_needs_an_image_id():
    doc = {
        "images": [{"id": 1, "width": 10, "height": 10}, {"id": 2, "width": 20, "height": 30}],
        "annotations": [{"image_id": i, "keypoints": _coco_keypoints(2)} for i in (1, 2, 2)],
    }
    with pytest.raises(PoseFormatError, match="--image-id"):
        parse_pose(doc)
    pose = parse_pose(doc, options=ReadOptions(image_id="2"))
    assert pose.num_people == 2 and pose.canvas == (20.0, 30.0)


def test_coco_results_take_scores_as_confidence_and_need_a_canvas():
    results = [{"image_id": 3, "category_id": 1, "score": 0.8, "keypoints": _coco_keypoints(1)}]
    results[0]["keypoints"][2] = 0.0
    assert detect_format(results) == "coco"
    with pytest.raises(PoseFormatError, match="--canvas"):
        parse_pose(results)
    pose = parse_pose(results, options=ReadOptions(canvas=(100, 100)))
    assert pose.state[0, 0] == JointState.ABSENT and pose.confidence[0, 1] == 1.0


# --- posedraw format specifics --------------------------------------------------------------------------
def test_posedraw_format_rejects_unknown_schema_and_keys():
    doc = dump_pose(Pose.single(np.ones((17, 2)), 8, 8), "posedraw")
    with pytest.raises(PoseFormatError, match="schema"):
        parse_pose({**doc, "schema": "posedraw.pose/2"})
    with pytest.raises(PoseFormatError, match="'canvass'"):
        parse_pose({**doc, "canvass": 1})


def test_posedraw_format_normalized_coordinates_and_omitted_joints():
    doc = {
        "schema": "posedraw.pose/1",
        "canvas": {"width": 100, "height": 50},
        "coordinates": "normalized",
        "people": [{"joints": {"nose": {"x": 0.5, "y": 0.5}, "left_wrist": {"x": 0.1, "y": 0.2, "state": "occluded"}}}],
    }
    pose = parse_pose(doc)
    assert pose.xy[0, 0].tolist() == [50.0, 25.0]
    assert pose.state[0, JOINTS.index("left_wrist")] == JointState.OCCLUDED
    assert int(pose.present.sum()) == 2


def test_unknown_document_is_rejected_with_the_formats_listed():
    with pytest.raises(PoseFormatError, match="expected a pose document"):
        detect_format({"hello": 1})


def test_read_pose_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"people": [{"pose_keypoints_2d": [1, 2]}]}')
    with pytest.raises(
        PoseFormatError, match=r"broken\.json: people\[0\]\.pose_keypoints_2d: expected an array of 54 or 75"
    ):
        read_pose(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "expected JSON"),
        ('{"nose": [NaN, 1]}', "finite numbers"),
        ('{"nose": [1e999, 1]}', "finite number"),
        ('{"nose": [1, 2, 3]}', "array of 2 numbers"),
        ('{"schema": "posedraw.pose/1", "canvas": {"width": -1, "height": 5}, "people": []}', "canvas.width"),
        ("[" * 100000, "JSON"),
    ],
)
def test_malformed_files_give_one_clear_error(tmp_path, text, message):
    path = tmp_path / "pose.json"
    path.write_text(text)
    with pytest.raises(PoseFormatError, match=message) as info:
        read_pose(path)
    assert "\n" not in str(info.value)


def test_binary_and_missing_files(tmp_path):
    binary = tmp_path / "pose.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PoseFormatError, match="UTF-8"):
        read_pose(binary)
    with pytest.raises(PoseFormatError, match="no such pose file"):
        read_pose(tmp_path / "missing.json")
