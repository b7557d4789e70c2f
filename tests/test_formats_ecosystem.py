"""Pose files as the ecosystem writes them: ControlNet / webui, ComfyUI POSE_KEYPOINT lists, OpenPose
(BODY_25, hands, face), COCO-WholeBody and mmpose results, and the animal files posedraw refuses.

Every file is written here, in the form those tools write it.
"""

from __future__ import annotations

import json

import pytest

from posedraw.errors import PoseFormatError
from posedraw.pose import JOINTS, JointState, Pose, ReadOptions, dump_pose, parse_pose, read_pose
from posedraw.pose.formats.openpose import LAYOUTS

COCO18, BODY25 = LAYOUTS[18], LAYOUTS[25]


def _spot(name: str) -> tuple[float, float]:
    """A distinct position for every joint name of any layout (scattered: no three joints on one line)."""
    k = sorted(set(COCO18) | set(BODY25)).index(name)
    return 20.0 + 7.0 * k, 40.0 + (37.0 * k) % 200


def _flat(layout: tuple[str, ...], missing: tuple[str, ...] = (), c: float = 0.9) -> list[float]:
    values: list[float] = []
    for name in layout:
        values += [0.0, 0.0, 0.0] if name in missing else [*_spot(name), c]
    return values


def _hand(offset: float, c: float = 0.8) -> list[float]:
    return [v for k in range(21) for v in (offset + k, 100.0 + k, c)]


def _face(count: int) -> list[float]:
    return [v for k in range(count) for v in (200.0 + k, 50.0 + k / 2, 0.7)]


def _controlnet_doc(*people: dict, **extra) -> dict:
    return {"people": list(people), "canvas_width": 512, "canvas_height": 512, "animals": [], **extra}


def _at(pose: Pose, name: str, p: int = 0) -> list[float]:
    return pose.xy[p, JOINTS.index(name)].tolist()


# --- ComfyUI POSE_KEYPOINT frame lists ---------------------------------------------------------------------
def _frames(count: int) -> list[dict]:
    frames = []
    for f in range(count):
        flat = _flat(COCO18)
        flat[0] += 10.0 * f  # the nose moves from frame to frame
        frames.append({"people": [{"pose_keypoints_2d": flat}], "canvas_width": 512, "canvas_height": 512})
    return frames


def test_comfyui_frame_list_reads_the_first_frame_and_says_so(tmp_path):
    path = tmp_path / "frames.json"
    path.write_text(json.dumps(_frames(3)))
    notes: list[str] = []
    pose = read_pose(path, notes=notes)
    assert _at(pose, "nose") == list(_spot("nose"))
    assert notes == [f"{path} holds 3 frames; read frame 0 (choose another with --frame N)"]


def test_comfyui_frame_option_chooses_a_frame_and_out_of_range_is_refused():
    notes: list[str] = []
    pose = parse_pose(_frames(3), options=ReadOptions(frame=2), notes=notes)
    assert _at(pose, "nose")[0] == _spot("nose")[0] + 20.0 and notes == []
    with pytest.raises(PoseFormatError, match=r"frame: expected a frame number from 0 to 2"):
        parse_pose(_frames(3), options=ReadOptions(frame=3))
    with pytest.raises(PoseFormatError, match="holds one frame"):
        parse_pose(_frames(1)[0], options=ReadOptions(frame=1))
    assert parse_pose(_frames(1), notes=notes).num_people == 1 and notes == []


# --- body layouts ------------------------------------------------------------------------------------------
def test_18_points_padded_with_zeros_to_75_values_are_not_read_as_body25():
    padded = _flat(COCO18) + [0.0] * 21
    notes: list[str] = []
    pose = parse_pose(_controlnet_doc({"pose_keypoints_2d": padded}), notes=notes)
    for name in JOINTS:  # the left ankle stays at the ankle (as BODY_25 it would land on index 14 ...)
        assert _at(pose, name) == list(_spot(name)), name
    assert pose.parts["torso"].xy[0, 0].tolist() == list(_spot("neck"))
    assert "feet" not in pose.parts and not pose.parts["torso"].present[0, 1]
    assert len(notes) == 1 and "18-point layout padded with zeros" in notes[0]


def test_body25_with_a_zero_tail_is_body25_when_its_mid_hip_lies_between_its_hips():
    flat = _flat(BODY25, missing=("left_ear", *BODY25[19:]))
    mid = BODY25.index("mid_hip")
    left, right = _spot("left_hip"), _spot("right_hip")
    flat[3 * mid : 3 * mid + 2] = [(left[0] + right[0]) / 2 + 1.0, (left[1] + right[1]) / 2]
    notes: list[str] = []
    pose = parse_pose(_controlnet_doc({"pose_keypoints_2d": flat}), notes=notes)
    assert _at(pose, "left_ankle") == list(_spot("left_ankle")) and notes == []
    assert pose.state[0, JOINTS.index("left_ear")] == JointState.ABSENT


def test_naming_openpose25_reads_75_values_as_body25_whatever_they_hold():
    flat = _flat(BODY25, missing=("left_ear", *BODY25[19:]))
    doc = _controlnet_doc({"pose_keypoints_2d": flat})
    assert _at(parse_pose(doc, "openpose25"), "left_ankle") == list(_spot("left_ankle"))
    assert _at(parse_pose(doc), "left_ankle") != list(_spot("left_ankle"))  # the padding rule, unconfirmed


def test_body25_keeps_its_mid_hip_and_feet_as_parts():
    pose = parse_pose(_controlnet_doc({"pose_keypoints_2d": _flat(BODY25)}))
    assert pose.parts["torso"].xy[0].tolist() == [list(_spot("neck")), list(_spot("mid_hip"))]
    assert pose.parts["feet"].xy[0, 5].tolist() == list(_spot("right_heel"))
    assert pose.parts["feet"].present.all()


def test_nested_triples_read_like_flat_ones():
    flat = _flat(COCO18)
    nested = [flat[i : i + 3] for i in range(0, len(flat), 3)]
    hand = _hand(10.0)
    person = {"pose_keypoints_2d": nested, "hand_left_keypoints_2d": [hand[i : i + 3] for i in range(0, 63, 3)]}
    pose = parse_pose(_controlnet_doc(person))
    flat_pose = parse_pose(_controlnet_doc({"pose_keypoints_2d": flat, "hand_left_keypoints_2d": hand}))
    assert pose.allclose(flat_pose, atol=0.0)


# --- nobody, null arrays, hands and face -------------------------------------------------------------------
def test_a_file_with_nobody_is_a_pose_of_zero_people_and_round_trips():
    pose = parse_pose(_controlnet_doc())
    assert pose.num_people == 0 and pose.canvas == (512.0, 512.0)
    plain = parse_pose({"people": []}, options=ReadOptions(canvas=(64, 48)))
    assert plain.num_people == 0 and plain.canvas == (64.0, 48.0)
    for fmt in ("posedraw", "openpose", "openpose25", "coco"):
        back = parse_pose(json.loads(json.dumps(dump_pose(pose, fmt))))
        assert back.num_people == 0 and back.canvas == pose.canvas, fmt


def test_a_null_body_is_a_person_without_joints_who_keeps_hands_and_face():
    person = {"pose_keypoints_2d": None, "hand_left_keypoints_2d": _hand(10.0), "face_keypoints_2d": None}
    pose = parse_pose(_controlnet_doc(person, {"pose_keypoints_2d": _flat(COCO18), "hand_right_keypoints_2d": []}))
    assert pose.num_people == 2 and not pose.present[0].any() and pose.present[1].all()
    assert pose.parts["left_hand"].present[0].all() and not pose.parts["left_hand"].present[1].any()
    assert "right_hand" not in pose.parts and "face" not in pose.parts


@pytest.mark.parametrize("face_points", [68, 70])
def test_hands_and_face_are_read_as_parts(face_points):
    person = {
        "pose_keypoints_2d": _flat(COCO18),
        "hand_left_keypoints_2d": _hand(10.0),
        "hand_right_keypoints_2d": _hand(60.0, c=0.0),  # nothing found
        "face_keypoints_2d": _face(face_points),
    }
    pose = parse_pose(_controlnet_doc(person))
    assert pose.parts["left_hand"].xy[0, 20].tolist() == [30.0, 120.0]
    assert pose.parts["left_hand"].confidence[0, 0] == 0.8
    assert "right_hand" not in pose.parts  # every point absent: nothing to keep
    assert pose.parts["face"].num_points == face_points and pose.parts["face"].present.all()
    back = parse_pose(json.loads(json.dumps(dump_pose(pose, "openpose"))))
    assert back.allclose(pose, atol=1e-9, compare_confidence=False)


def test_the_files_own_neck_survives_conversion_to_openpose():
    flat = _flat(COCO18)
    flat[3:5] = [flat[3] + 25.7, flat[4]]  # the neck is not at the shoulders' midpoint
    pose = parse_pose(_controlnet_doc({"pose_keypoints_2d": flat}))
    written = dump_pose(pose, "openpose")["people"][0]["pose_keypoints_2d"]
    assert written[3:6] == [flat[3], flat[4], 1.0]
    via_posedraw = parse_pose(json.loads(json.dumps(dump_pose(pose, "posedraw"))))
    assert dump_pose(via_posedraw, "openpose")["people"][0]["pose_keypoints_2d"][3:5] == flat[3:5]


# --- coordinate spaces -------------------------------------------------------------------------------------
def test_normalized_file_with_a_hand_slightly_off_the_canvas_stays_normalized():
    flat = [v / 512.0 if i % 3 != 2 else v for i, v in enumerate(_flat(COCO18))]
    hand = [1.03 if i % 3 == 0 else (0.5 if i % 3 == 1 else 1.0) for i in range(63)]
    pose = parse_pose(_controlnet_doc({"pose_keypoints_2d": flat, "hand_right_keypoints_2d": hand}))
    assert _at(pose, "nose") == pytest.approx(list(_spot("nose")))
    assert pose.parts["right_hand"].xy[0, 0].tolist() == pytest.approx([1.03 * 512, 256.0])


def test_values_beyond_the_normalized_range_are_pixels_and_plain_files_in_0_1_stay_ambiguous():
    flat = [0.5 if i % 3 != 2 else 1.0 for i in range(54)]
    flat[0] = 1.6
    assert _at(parse_pose(_controlnet_doc({"pose_keypoints_2d": flat})), "nose") == [1.6, 0.5]
    flat[0] = 0.9
    with pytest.raises(PoseFormatError, match="--coords"):
        parse_pose({"people": [{"pose_keypoints_2d": flat}]}, options=ReadOptions(canvas=(64, 64)))


# --- refusals: one line each, naming the field ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("person", "message"),
    [
        ({"pose_keypoints_2d": [1.0] * 60}, r"people\[0\]\.pose_keypoints_2d: expected an array of 54 or 75 numbers "
                                            r"\(18 or 25 keypoint triples: the COCO-18 or BODY_25 layout\)"),
        ({"pose_keypoints_2d": [[1.0, 2.0, 1.0]] * 20}, r"pose_keypoints_2d: expected an array of 18 or 25 "
                                                        r"\[x, y, c\]"),
        ({"pose_keypoints_2d": None, "face_keypoints_2d": [1.0] * 150}, r"face_keypoints_2d: expected an array of "
                                                                       r"204 or 210 numbers \(68 or 70 keypoint"),
        ({"pose_keypoints_2d": None, "hand_left_keypoints_2d": [1.0] * 60}, r"hand_left_keypoints_2d: expected an "
                                                                            r"array of 63 numbers \(21 keypoint"),
        ({"pose_keypoints_2d": None, "hand_right_keypoints_2d": [[1.0, 2.0]] * 21}, r"\[0\]: expected an array of "
                                                                                    r"3 numbers"),
    ],
)  # fmt: skip
def test_unknown_layouts_and_part_sizes_are_refused_with_one_line(tmp_path, person, message):
    path = tmp_path / "pose.json"
    path.write_text(json.dumps(_controlnet_doc(person)))
    with pytest.raises(PoseFormatError, match=message) as info:
        read_pose(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_controlnet_animal_pose_files_are_refused_but_an_empty_animals_list_is_fine():
    animal = [v for k in range(17) for v in (10.0 + k, 20.0 + k, 1.0)]
    doc = {"version": "ap10k", "animals": [animal], "canvas_width": 512, "canvas_height": 512}
    with pytest.raises(
        PoseFormatError, match="animals: expected human poses under 'people'; this is an animal"
    ) as info:
        parse_pose(doc)
    assert "\n" not in str(info.value)
    for variant in ({**doc, "people": [{"pose_keypoints_2d": _flat(COCO18)}]}, {**doc, "animals": []}):
        with pytest.raises(PoseFormatError, match="an animal pose file"):
            parse_pose(variant)
    assert parse_pose(_controlnet_doc({"pose_keypoints_2d": _flat(COCO18)})).num_people == 1


# --- COCO: animals, COCO-WholeBody, mmpose results ----------------------------------------------------------
AP10K_NAMES = ["left_eye", "right_eye", "nose", "neck", "root_of_tail", "left_shoulder", "left_elbow",
               "left_front_paw", "right_shoulder", "right_elbow", "right_front_paw", "left_hip", "left_knee",
               "left_back_paw", "right_hip", "right_knee", "right_back_paw"]  # fmt: skip


def _coco_keypoints(count: int = 17, v: float = 2) -> list[float]:
    return [float(c) for j in range(count) for c in (j + 1.5, j + 2.5, v)]


def test_coco_animal_category_is_refused_and_files_without_categories_are_people():
    doc = {
        "images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 64, "height": 64}],
        "annotations": [{"image_id": i, "category_id": 3, "keypoints": _coco_keypoints()} for i in (1, 2)],
        "categories": [{"id": 3, "name": "dog", "supercategory": "animal", "keypoints": AP10K_NAMES}],
    }
    with pytest.raises(PoseFormatError, match=r"annotations\[0\]: expected a person .* category 'dog' has "
                                              r"keypoints 'left_eye', 'right_eye', 'nose', 'neck', \.\.\.: an "
                                              r"animal pose") as info:  # fmt: skip
        parse_pose(doc)
    assert "\n" not in str(info.value)
    people = {**doc, "categories": [{"id": 3, "name": "person", "keypoints": list(JOINTS)}]}
    assert parse_pose(people, options=ReadOptions(image_id=1)).num_people == 1
    no_categories = {key: value for key, value in doc.items() if key != "categories"}
    assert parse_pose(no_categories, options=ReadOptions(image_id=2)).num_people == 1


def test_coco_wholebody_parts_with_flags_scores_and_valid_flags():
    annotation = {
        "image_id": 5,
        "category_id": 1,
        "keypoints": _coco_keypoints(),
        "foot_kpts": _coco_keypoints(6, v=1),
        "face_kpts": _coco_keypoints(68, v=2),
        "face_valid": True,
        "lefthand_kpts": [c for k in range(21) for c in (40.0 + k, 41.0, 0.25 if k else 0.0)],  # scores
        "lefthand_valid": True,
        "righthand_kpts": _coco_keypoints(21),
        "righthand_valid": False,
    }
    doc = {"images": [{"id": 5, "width": 100, "height": 100}], "annotations": [annotation]}
    pose = parse_pose(doc)
    assert (pose.parts["feet"].state == JointState.OCCLUDED).all() and pose.parts["feet"].confidence is None
    assert pose.parts["face"].num_points == 68 and pose.parts["face"].visible.all()
    hand = pose.parts["left_hand"]
    assert hand.state[0, 0] == JointState.ABSENT and hand.visible[0, 1:].all() and hand.confidence[0, 5] == 0.25
    assert "right_hand" not in pose.parts  # not valid
    back = parse_pose(json.loads(json.dumps(dump_pose(pose, "coco"))))
    assert back.allclose(pose, atol=0.0, compare_confidence=False)
    written = dump_pose(pose, "coco")["annotations"][0]
    assert written["righthand_valid"] is False and written["righthand_kpts"] == [0.0, 0.0, 0] * 21


def test_mmpose_wholebody_results_read_scores_of_every_part():
    result = {
        "image_id": 1,
        "category_id": 1,
        "score": 0.9,
        "keypoints": _coco_keypoints(v=0.6),
        "foot_kpts": _coco_keypoints(6, v=0.5),
        "face_kpts": _coco_keypoints(68, v=0.4),
        "lefthand_kpts": _coco_keypoints(21, v=0.3),
        "righthand_kpts": _coco_keypoints(21, v=0.0),
    }
    pose = parse_pose([result], options=ReadOptions(canvas=(100, 100)))
    assert pose.confidence[0, 0] == 0.6 and pose.visible.all()
    assert pose.parts["feet"].confidence[0, 0] == 0.5 and pose.parts["face"].confidence[0, 0] == 0.4
    assert pose.parts["left_hand"].visible.all() and "right_hand" not in pose.parts
