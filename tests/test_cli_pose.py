"""The `posedraw pose` commands through the real entry point, including every bad-input path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posedraw.pose import JOINTS, Part, Pose, dump_pose, read_pose
from posedraw.pose.detect import MEDIAPIPE_INDEX, landmarks_to_pose
from posedraw.pose.formats.openpose import LAYOUTS

from .cli_helpers import run_cli as _run
from .test_formats import assert_controlnet_keeps_every_present_joint, controlnet_decode


def test_convert_danbooru_to_openpose_and_back_is_lossless(capsys, keypoint_files, tmp_path):
    source = keypoint_files["1001870"]
    code, out, _ = _run(capsys, "pose", "convert", source, tmp_path / "op.json", "--to", "openpose")
    assert code == 0 and "openpose" in out
    assert "people" in json.loads((tmp_path / "op.json").read_text())
    code, _, _ = _run(capsys, "pose", "convert", tmp_path / "op.json", tmp_path / "back.json", "--to", "danbooru")
    assert code == 0
    assert read_pose(tmp_path / "back.json").allclose(read_pose(source), atol=1e-6)


def test_convert_pad_square_then_danbooru(capsys, tmp_path):
    doc = {"people": [{"pose_keypoints_2d": [10.0, 20.0, 1.0] * 18}], "canvas_width": 100, "canvas_height": 200}
    (tmp_path / "tall.json").write_text(json.dumps(doc))
    code, _, err = _run(capsys, "pose", "convert", tmp_path / "tall.json", tmp_path / "d.json", "--to", "danbooru")
    assert code == 2 and "--pad-square" in err and not (tmp_path / "d.json").exists()
    code, _, _ = _run(
        capsys, "pose", "convert", tmp_path / "tall.json", tmp_path / "d.json", "--to", "danbooru", "--pad-square"
    )
    assert code == 0
    assert json.loads((tmp_path / "d.json").read_text())["nose"] == pytest.approx([20.0 * 2.56, 60.0 * 2.56])


def test_render_writes_a_skeleton_png_of_the_requested_size(capsys, keypoint_files, tmp_path):
    code, _, _ = _run(capsys, "pose", "render", keypoint_files["1000846"], tmp_path / "s.png", "--size", "256")
    assert code == 0
    image = np.asarray(Image.open(tmp_path / "s.png"))
    assert image.shape == (256, 256, 3) and image.any(axis=-1).mean() > 0.005


def test_render_over_an_image(capsys, keypoint_files, tmp_path):
    Image.new("RGB", (300, 300), (0, 0, 255)).save(tmp_path / "photo.png")
    code, _, _ = _run(
        capsys, "pose", "render", keypoint_files["1000846"], tmp_path / "o.png", "--over", tmp_path / "photo.png"
    )
    image = np.asarray(Image.open(tmp_path / "o.png"))
    assert code == 0 and image.shape == (300, 300, 3)
    assert tuple(image[2, 2]) == (0, 0, 255) and (image != (0, 0, 255)).any(axis=-1).sum() > 100


def test_show_lists_every_joint(capsys, keypoint_files, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal must not wrap the summary line
    code, out, _ = _run(capsys, "pose", "show", keypoint_files["1000846"])
    assert code == 0 and "1 person, canvas 512x512" in out
    assert "left_ankle" in out and "205.6" in out


def test_detect_writes_a_pose_and_a_rendering(capsys, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    Image.fromarray(skimage_data.astronaut()).save(tmp_path / "astronaut.png")
    code, out, _ = _run(
        capsys, "pose", "detect", tmp_path / "astronaut.png", tmp_path / "pose.json", "--render", tmp_path / "pose.png"
    )
    assert code == 0, out
    assert read_pose(tmp_path / "pose.json").visible.sum() >= 5
    assert Image.open(tmp_path / "pose.png").size == (512, 512)


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str, Path]]:
    (tmp_path / "notjson.json").write_text("{oops")
    (tmp_path / "good.json").write_text('{"nose": [10, 20], "eye_left": [5, 25]}')
    (tmp_path / "nan.json").write_text('{"nose": [NaN, 3]}')
    (tmp_path / "len.json").write_text(
        '{"people": [{"pose_keypoints_2d": [1, 2, 3]}], "canvas_width": 5, "canvas_height": 5}'
    )
    (tmp_path / "joint.json").write_text('{"nose": [1, 2], "tail": [3, 4]}')
    (tmp_path / "canvas.json").write_text(
        '{"schema": "posedraw.pose/1", "canvas": {"width": 0, "height": 5}, "people": [{"joints": {}}]}'
    )
    (tmp_path / "nocanvas.json").write_text('{"people": [{"pose_keypoints_2d": ' + str([5.0] * 54) + "}]}")
    (tmp_path / "image.png").write_bytes(b"not a png at all")
    Image.new("RGB", (64, 64)).save(tmp_path / "empty.png")
    out = tmp_path / "out.json"
    png = tmp_path / "out.png"
    return [
        (["pose", "convert", tmp_path / "notjson.json", out], "notjson.json: expected JSON", out),
        (["pose", "convert", tmp_path / "nan.json", out], "nan.json: document: expected finite numbers", out),
        (["pose", "convert", tmp_path / "len.json", out], "pose_keypoints_2d: expected an array of 54 or 75", out),
        (["pose", "render", tmp_path / "joint.json", png], "'tail': expected a joint name", png),
        (["pose", "render", tmp_path / "canvas.json", png], "canvas.width: expected a positive number", png),
        (["pose", "show", tmp_path / "nocanvas.json"], "--canvas WIDTHxHEIGHT", out),
        (["pose", "convert", tmp_path / "nocanvas.json", out, "--canvas", "0x5"], "--canvas: expected", out),
        (["pose", "convert", tmp_path / "missing.json", out], "missing.json: no such pose file", out),
        (["pose", "detect", tmp_path / "image.png", out], "image.png: not a readable image", out),
        (["pose", "detect", tmp_path / "empty.png", out], "empty.png: no person found", out),
        (
            ["pose", "render", tmp_path / "good.json", tmp_path / "out.xyz"],
            "out.xyz: unknown image extension",
            tmp_path / "out.xyz",
        ),
    ]


def test_bad_input_gives_one_line_exit_2_and_no_output_file(capsys, tmp_path):
    for argv, message, output in _bad_inputs(tmp_path):
        code, out, err = _run(capsys, *argv)
        assert code == 2, (argv, out, err)
        assert err.startswith("error: ") and err.count("\n") == 1, (argv, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err and not output.exists(), argv
        assert not list(output.parent.glob(f".{output.name}*")), "a temporary file was left behind"


def test_unknown_option_values_are_usage_errors(capsys, keypoint_files, tmp_path):
    code, _, err = _run(capsys, "pose", "convert", keypoint_files["1000846"], tmp_path / "o.json", "--to", "yaml")
    assert code == 2 and "yaml" in err and not (tmp_path / "o.json").exists()


# --- the ecosystem's files through the CLI ------------------------------------------------------------------
def _body25_doc() -> dict:
    flat = [v for k in range(25) for v in (30.0 + 9 * k, 40.0 + (31 * k) % 300, 0.8)]
    return {"people": [{"pose_keypoints_2d": flat}], "canvas_width": 400, "canvas_height": 400}


def _notes(err: str) -> list[str]:
    return [line[len("note: ") :] for line in err.splitlines() if line.startswith("note: ")]


def test_file_names_with_brackets_are_printed_literally(capsys, keypoint_files, tmp_path):
    (tmp_path / "[").mkdir()
    weird = tmp_path / "[" / "x].json"
    versioned = tmp_path / "pose[v2].json"
    for path in (weird, versioned):
        path.write_text(keypoint_files["1000846"].read_text())
        code, out, err = _run(capsys, "pose", "show", path)
        assert code == 0 and f"{path}: 1 person, canvas 512x512 px" in out, err
    code, out, _ = _run(capsys, "pose", "convert", versioned, tmp_path / "out[1].json", "--to", "openpose")
    assert code == 0 and f"wrote {tmp_path / 'out[1].json'} (openpose" in out


def test_errors_are_printed_literally(capsys, tmp_path):
    (tmp_path / "bad[1].json").write_text('{"hello": 1}')
    code, _, err = _run(capsys, "pose", "show", tmp_path / "bad[1].json")
    assert code == 2 and err.count("\n") == 1
    assert f"error: {tmp_path / 'bad[1].json'}: document: expected a pose document" in err
    assert "danbooru {joint: [row, col]}), got dict" in err
    (tmp_path / "[b].json").write_text('{"nose": [1, 2], "[bold]tail[/]": [3, 4]}')
    code, _, err = _run(capsys, "pose", "render", tmp_path / "[b].json", tmp_path / "o.png")
    assert code == 2 and "'[bold]tail[/]': expected a joint name" in err and f"{tmp_path / '[b].json'}" in err


def test_convert_says_what_the_target_format_leaves_out(capsys, tmp_path):
    (tmp_path / "b25.json").write_text(json.dumps(_body25_doc()))
    code, out, err = _run(capsys, "pose", "convert", tmp_path / "b25.json", tmp_path / "op.json", "--to", "openpose")
    assert code == 0 and "wrote" in out
    notes = _notes(err)
    assert len(notes) == 1 and notes[0].startswith(f"left out of {tmp_path / 'op.json'} (openpose): mid-hip (the "), (
        notes
    )
    assert "feet (the openpose25 format keeps them)" in notes[0] and "confidences (written as 1.0" in notes[0]
    code, _, err = _run(capsys, "pose", "convert", tmp_path / "b25.json", tmp_path / "b.json", "--to", "openpose25",
                        "--keep-confidence")  # fmt: skip
    assert code == 0 and _notes(err) == []
    assert read_pose(tmp_path / "b.json").allclose(read_pose(tmp_path / "b25.json"), atol=1e-9)
    code, _, err = _run(capsys, "pose", "convert", tmp_path / "b25.json", tmp_path / "p.json")
    assert code == 0 and _notes(err) == []
    assert read_pose(tmp_path / "p.json").allclose(read_pose(tmp_path / "b25.json"), atol=0.0)


def test_frames_of_a_comfyui_list_are_chosen_with_frame(capsys, tmp_path):
    frames = [_body25_doc(), {"people": [], "canvas_width": 64, "canvas_height": 32}]
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    code, out, err = _run(capsys, "pose", "show", tmp_path / "frames.json")
    assert code == 0 and "1 person, canvas 400x400" in out
    assert _notes(err) == [f"{tmp_path / 'frames.json'} holds 2 frames; read frame 0 (choose another with --frame N)"]
    code, out, err = _run(capsys, "pose", "show", tmp_path / "frames.json", "--frame", "1")
    assert code == 0 and "0 people, canvas 64x32 px" in out and err == ""
    code, _, err = _run(capsys, "pose", "convert", tmp_path / "frames.json", tmp_path / "o.json", "--frame", "2")
    assert code == 2 and "frame: expected a frame number from 0 to 1" in err


def test_show_lists_the_parts_of_every_person(capsys, tmp_path):
    (tmp_path / "b25.json").write_text(json.dumps(_body25_doc()))
    code, out, _ = _run(capsys, "pose", "show", tmp_path / "b25.json")
    assert code == 0
    assert "person 0 torso: 2 of 2 points present" in out and "person 0 feet: 6 of 6 points present" in out


def _hands_and_face_pose() -> Pose:
    xy = np.stack([np.linspace(50, 300, 17), np.linspace(40, 380, 17)], axis=1)
    state = np.full(17, 2)
    state[[3, 8]] = (0, 1)
    hand = Part(np.full((1, 21, 2), 120.0) + np.arange(21)[None, :, None], np.full((1, 21), 2), np.full((1, 21), 0.3))
    face_state = np.full((1, 70), 2)
    face_state[0, 68:] = 0
    face = Part(np.full((1, 70, 2), 200.0) + np.arange(70)[None, :, None] / 4, face_state)
    parts = {"left_hand": hand, "face": face}
    return Pose.single(xy, 400, 400, state=state, confidence=np.linspace(0.2, 0.95, 17), parts=parts)


def test_convert_to_openpose_output_keeps_every_present_joint_under_controlnets_rule(capsys, keypoint_files, tmp_path):
    pose = _hands_and_face_pose()
    (tmp_path / "full.json").write_text(json.dumps(dump_pose(pose)))
    for source in (keypoint_files["1000846"], tmp_path / "full.json"):
        code, _, err = _run(capsys, "pose", "convert", source, tmp_path / "cn.json", "--to", "openpose")
        assert code == 0, err
        assert_controlnet_keeps_every_present_joint(read_pose(source), json.loads((tmp_path / "cn.json").read_text()))
    kept = controlnet_decode(json.loads((tmp_path / "cn.json").read_text()))[0]
    assert sum(p is not None for p in kept["hand_left_keypoints_2d"]) == 21
    assert sum(p is not None for p in kept["face_keypoints_2d"]) == 68


def _fake_detector(monkeypatch) -> Pose:
    """The detector replaced by a fixed MediaPipe result, as tests/test_detect.py builds poses without it."""
    landmarks = np.zeros((33, 3))
    for j, name in enumerate(JOINTS):
        landmarks[MEDIAPIPE_INDEX[name]] = (0.1 + 0.04 * j, 0.2 + 0.03 * j, 0.9 if j % 3 else 0.3)
    landmarks[MEDIAPIPE_INDEX["right_ankle"], 1] = 1.2  # below the photo: absent
    pose = landmarks_to_pose(landmarks, 64, 64)
    monkeypatch.setattr("posedraw.pose.detect.detect_pose", lambda image, source="image": pose)
    return pose


def test_detect_to_openpose_output_keeps_every_present_joint_under_controlnets_rule(capsys, monkeypatch, tmp_path):
    pose = _fake_detector(monkeypatch)
    Image.new("RGB", (64, 64)).save(tmp_path / "photo.png")
    code, out, err = _run(capsys, "pose", "detect", tmp_path / "photo.png", tmp_path / "p.json", "--to", "openpose")
    assert code == 0 and "wrote" in out, err
    doc = json.loads((tmp_path / "p.json").read_text())
    assert_controlnet_keeps_every_present_joint(pose, doc)
    assert "occluded states (written as visible)" in _notes(err)[0]
    code, _, _ = _run(capsys, "pose", "detect", tmp_path / "photo.png", tmp_path / "raw.json", "--to", "openpose",
                      "--keep-confidence")  # fmt: skip
    raw = json.loads((tmp_path / "raw.json").read_text())["people"][0]["pose_keypoints_2d"]
    nose = LAYOUTS[18].index("nose")
    assert code == 0 and raw[3 * nose + 2] == pytest.approx(pose.confidence[0, 0]) and raw[3 * nose + 2] < 1.0
