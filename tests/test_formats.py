import json

import numpy as np
import pytest
from hypothesis import assume, given

from posedraw.errors import PoseFormatError
from posedraw.pose import (
    JOINTS,
    PARTS,
    JointState,
    Part,
    Pose,
    ReadOptions,
    WriteOptions,
    detect_format,
    dump_pose,
    parse_pose,
    read_pose,
)
from posedraw.pose import write_pose as write
from posedraw.pose.formats import MAX_JSON_DEPTH, MAX_POSE_FILE_BYTES, json_depth, loads_json
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


# --- round trips (property tests) ----------------------------------------------------------------------
def _part_subset(pose: Pose, names: tuple[str, ...], face_points: int = 70) -> dict[str, Part]:
    parts = {name: part for name, part in pose.parts.items() if name in names}
    if "face" in parts and parts["face"].num_points > face_points:
        face = parts["face"]
        parts["face"] = Part(face.xy[:, :face_points], face.state[:, :face_points])
    return parts


def _derived_torso(pose: Pose, with_mid_hip: bool) -> Part:
    """The neck (mid-hip) an OpenPose writer stores: the pose's own, else the midpoint of the shoulders (hips)."""
    own = pose.parts.get("torso")
    xy = np.full((pose.num_people, 2, 2), np.nan)
    state = np.zeros((pose.num_people, 2), dtype=np.int64)
    pairs = [("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")][: 2 if with_mid_hip else 1]
    for k, (a, b) in enumerate(pairs):
        for p in range(pose.num_people):
            ia, ib = JOINTS.index(a), JOINTS.index(b)
            if own is not None and own.present[p, k]:
                xy[p, k], state[p, k] = own.xy[p, k], JointState.VISIBLE
            elif pose.present[p, ia] and pose.present[p, ib]:
                xy[p, k], state[p, k] = (pose.xy[p, ia] + pose.xy[p, ib]) / 2, JointState.VISIBLE
    return Part(xy, state)


def _openpose_expected(pose: Pose, body25: bool) -> Pose:
    names = ("left_hand", "right_hand", "face", "feet") if body25 else ("left_hand", "right_hand", "face")
    return pose.replace(parts={**_part_subset(pose, names), "torso": _derived_torso(pose, body25)})


@given(poses(min_people=0))
def test_posedraw_format_is_lossless(pose):
    back = _through(pose, "posedraw")
    assert back.allclose(pose, atol=0.0)
    assume(pose.num_people > 0)  # nobody has no confidences to store
    assert (back.confidence is None) == (pose.confidence is None)
    assert list(back.parts) == list(pose.parts)
    for name, part in pose.parts.items():
        assert (back.parts[name].confidence is None) == (part.confidence is None)


def test_posedraw_format_without_parts_is_written_as_before():
    pose = Pose.single(np.full((17, 2), 4.0), 8, 8, state=[2, 1, 0] + [2] * 14)
    doc = dump_pose(pose, "posedraw")
    assert set(doc) == {"schema", "canvas", "coordinates", "people"} and set(doc["people"][0]) == {"joints"}
    assert doc["people"][0]["joints"]["nose"] == {"x": 4.0, "y": 4.0, "state": "visible"}
    assert doc["people"][0]["joints"]["right_eye"] == {"state": "absent"}


@given(poses(states=(0, 1, 2), min_people=0))
def test_coco_keeps_positions_all_three_states_feet_hands_and_face(pose):
    back = _through(pose, "coco")
    expected = pose.replace(parts=_part_subset(pose, ("feet", "left_hand", "right_hand", "face"), face_points=68))
    assert back.allclose(expected, atol=1e-9, compare_confidence=False)
    assert back.confidence is None


@given(poses(states=(0, 2), min_people=0))
def test_openpose_keeps_positions_presence_hands_face_and_the_neck(pose):
    back = _through(pose, "openpose", ReadOptions(coordinates="pixels"))
    assert back.allclose(_openpose_expected(pose, body25=False), atol=1e-9, compare_confidence=False)
    for points in (back, *back.parts.values()):  # every present joint at 1.0: ControlNet keeps them all
        assert (points.confidence[points.present] == 1.0).all()


@given(poses(states=(0, 2), min_people=0))
def test_openpose25_also_keeps_mid_hip_and_feet(pose):
    doc = json.loads(json.dumps(dump_pose(pose, "openpose25")))
    back = parse_pose(doc, "openpose25", ReadOptions(coordinates="pixels"))
    assert back.allclose(_openpose_expected(pose, body25=True), atol=1e-9, compare_confidence=False)


@given(poses(states=(0, 2), with_confidence=True))
def test_openpose_keep_confidence_writes_the_raw_confidences(pose):
    doc = json.loads(json.dumps(dump_pose(pose, "openpose", WriteOptions(keep_confidence=True))))
    back = parse_pose(doc, options=ReadOptions(coordinates="pixels"))
    assert np.array_equal(back.confidence, np.where(pose.present, np.maximum(pose.confidence, 1e-6), 0.0))
    for name in ("left_hand", "right_hand", "face"):
        if name in back.parts:
            part = pose.parts[name]
            assert np.array_equal(
                back.parts[name].confidence, np.where(part.present, np.maximum(part.confidence, 1e-6), 0.0)
            )


def controlnet_decode(doc: dict) -> list[dict[str, list | None]]:
    """ControlNet's reading of a pose JSON, restated: a keypoint is kept iff its confidence c >= 1.0."""

    def keypoints(values):
        if not values:
            return None
        return [(x, y) if c >= 1.0 else None for x, y, c in zip(values[0::3], values[1::3], values[2::3])]

    keys = ("pose_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d")
    return [{key: keypoints(person.get(key)) for key in keys} for person in doc["people"]]


def assert_controlnet_keeps_every_present_joint(pose: Pose, doc: dict) -> None:
    decoded = controlnet_decode(json.loads(json.dumps(doc)))
    layout = LAYOUTS[18]
    for p, person in enumerate(decoded):
        body = person["pose_keypoints_2d"]
        for j, name in enumerate(JOINTS):
            kept = body[layout.index(name)]
            assert (kept is not None) == bool(pose.present[p, j]), (p, name)
            if kept is not None:
                assert np.allclose(kept, pose.xy[p, j], atol=1e-3, rtol=0)
        for name, key in (("left_hand", "hand_left_keypoints_2d"), ("right_hand", "hand_right_keypoints_2d"),
                          ("face", "face_keypoints_2d")):  # fmt: skip
            if name in pose.parts:
                part = pose.parts[name]
                kept = [point is not None for point in person[key]]
                assert kept == part.present[p].tolist(), (p, name)


@given(poses(states=(0, 1, 2), with_confidence=True))
def test_controlnet_keeps_every_present_joint_of_openpose_output(pose):
    assert_controlnet_keeps_every_present_joint(pose, dump_pose(pose, "openpose"))


@given(poses(max_people=1, states=(0, 2), with_confidence=False, square=True))
def test_danbooru_keeps_positions_of_square_poses(pose):
    assume(pose.present.any())  # the format cannot store a pose without joints (the writer refuses it)
    back = _through(pose, "danbooru")
    scale = 512.0 / pose.width
    assert np.allclose(back.xy, pose.xy * scale, atol=1e-9, rtol=0, equal_nan=True)
    assert np.array_equal(back.state, pose.state)


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("openpose", "left out of the document (openpose): mid-hip (the openpose25 format keeps it); feet (the "
         "openpose25 format keeps them); occluded states (written as visible); confidences (written as 1.0"),
        ("openpose25", "left out of the document (openpose25): occluded states (written as visible); confidences"),
        ("coco", "left out of the document (coco): neck; mid-hip; pupils (COCO-WholeBody faces have 68 points); "
         "confidences"),
        ("danbooru", "left out of the document (danbooru): neck; mid-hip; feet; hands; face; occluded states"),
    ],
)  # fmt: skip
def test_writers_say_what_their_format_leaves_out(fmt, message):
    everything = {name: Part(np.full((1, 70 if name == "face" else len(points), 2), 5.0),
                             np.full((1, 70 if name == "face" else len(points)), 2), None)
                  for name, points in PARTS.items()}  # fmt: skip
    state = np.full(17, 2)
    state[3] = JointState.OCCLUDED
    pose = Pose.single(np.full((17, 2), 5.0), 10, 10, state=state, confidence=np.full(17, 0.5), parts=everything)
    notes: list[str] = []
    dump_pose(pose, fmt, notes=notes)
    assert len(notes) == 1 and notes[0].startswith(message), notes
    notes = []
    dump_pose(pose, "posedraw", notes=notes)
    dump_pose(Pose.single(np.full((17, 2), 5.0), 10, 10), "openpose", notes=notes)
    assert notes == []


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


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100000 + "]" * 100000,  # the parser's own recursion
        '{"people": [{"pose_keypoints_2d": ' + "[" * 990 + "]" * 990 + "}]}",  # within the parser, past a reader
        '{"nose": [1, 2], "x": ' + "[" * 64 + "]" * 64 + "}",  # one level past the limit
    ],
)
def test_json_nested_past_the_limit_is_refused_before_parsing(tmp_path, text):
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(PoseFormatError) as info:
        read_pose(path)
    assert str(info.value) == f"{path}: expected JSON nested at most {MAX_JSON_DEPTH} levels deep"


def test_json_depth_counts_brackets_outside_strings_only():
    assert json_depth('[{"a": "[[[{{", "b": [1, "\\"]]]"]}]') == 3
    assert json_depth("3") == 0
    comfy = [{"people": [{"pose_keypoints_2d": [1, 2, 1]}]}]  # the deepest format posedraw reads
    assert json_depth(json.dumps(comfy)) == 5 <= MAX_JSON_DEPTH
    assert loads_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None


def test_a_pose_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.json"
    with path.open("wb") as f:  # sparse: no 32 MB written
        f.truncate(MAX_POSE_FILE_BYTES + 1)
    monkeypatch.setattr(type(path), "read_text", lambda *a, **k: pytest.fail("the file was read"))
    with pytest.raises(PoseFormatError) as info:
        read_pose(path)
    assert str(info.value) == f"{path}: expected a pose file of at most 32 MB, got 32.0 MB"
