"""The `posedraw pose` commands through the real entry point, including every bad-input path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posedraw.pose import read_pose

from .cli_helpers import run_cli as _run


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
