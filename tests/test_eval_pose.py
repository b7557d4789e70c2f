"""Pose fidelity evaluation: the shipped toy detector is accurate on held-out renders, and the metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posedraw.data.images import to_tensor
from posedraw.data.toy import make_toy_sample
from posedraw.eval.fidelity import detect, fidelity, swaps
from posedraw.eval.toy_detector import detect_toy_poses, load_detector
from posedraw.pipelines.outputs import METADATA_KEY, Job, metadata
from posedraw.pose import JOINTS, Pose

from .cli_helpers import run_cli

HELD_OUT = 900_000_000  # the detector trains on seeds 0..(steps*batch); these it never saw


@pytest.fixture(scope="module")
def held_out():
    return [make_toy_sample(HELD_OUT + i, 64) for i in range(200)]


@pytest.mark.slow
def test_shipped_toy_detector_is_accurate_on_held_out_renders(held_out):
    found = detect_toy_poses(load_detector(), torch.stack([to_tensor(s.image) for s in held_out]), 64, 64)
    report = fidelity(found, [s.pose for s in held_out])
    assert report.pck >= 0.95, report.pck
    assert report.swap_rate <= 0.02
    presence = np.mean([(p.present == s.pose.present).mean() for p, s in zip(found, held_out)])
    assert presence >= 0.93


def test_detector_verdicts_depend_on_the_image():
    """Shown the figure of another pose, the detector must disagree with the asked-for pose."""
    a, b = make_toy_sample(HELD_OUT + 1, 64), make_toy_sample(HELD_OUT + 2, 64)
    found = detect_toy_poses(load_detector(), to_tensor(b.image)[None], 64, 64)
    assert fidelity(found, [a.pose]).pck < 0.6


def test_swapped_sides_are_counted():
    xy = np.stack([np.linspace(10, 50, 17), np.linspace(5, 60, 17)], axis=1)
    target = Pose.single(xy, 64, 64)
    assert swaps(target, target) == (0, 8)
    mirrored = xy.copy()
    left, right = JOINTS.index("left_wrist"), JOINTS.index("right_wrist")
    mirrored[[left, right]] = mirrored[[right, left]]
    swapped, compared = swaps(Pose.single(mirrored, 64, 64), target)
    assert (swapped, compared) == (1, 8)
    report = fidelity([Pose.single(mirrored, 64, 64)], [target])
    assert report.swap_rate == pytest.approx(1 / 8) and report.per_joint_pck["nose"] == 1.0


def test_eval_pose_command_reads_the_pose_from_png_metadata(tmp_path, capsys):
    from PIL.PngImagePlugin import PngInfo

    paths = []
    for i in range(6):
        sample = make_toy_sample(HELD_OUT + 100 + i, 64)
        info = PngInfo()
        info.add_text(
            METADATA_KEY, json.dumps(metadata(Job(sample.pose, f"p{i}", i), {"sampler": "dpm++", "steps": 20}, "m"))
        )
        path = tmp_path / f"p{i}.png"
        sample.image.save(path, pnginfo=info)
        paths.append(path)
    code, out, err = run_cli(capsys, "eval", "pose", *paths, "--json", tmp_path / "report.json")
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["images"] == 6 and report["pck@0.1"] >= 0.9
    assert "6 images: PCK@0.1" in out


@pytest.fixture(scope="module")
def scenes():
    from posedraw.data.toy import make_toy_scene

    return {n: [make_toy_scene(HELD_OUT + i, 64, n) for i in range(24)] for n in (2, 3)}


@pytest.mark.slow
def test_people_of_a_scene_are_found_where_they_were_asked_for(scenes):
    """On true renders of held-out scenes, each person is detected in a crop around their place."""
    for people, minimum in ((2, 0.85), (3, 0.9)):  # measured on these 24 scenes: 0.909 and 0.974
        batch = scenes[people]
        images = torch.stack([to_tensor(s.image) for s in batch])
        targets = [s.pose for s in batch]
        report = fidelity(detect(images, "toy", targets), targets)
        assert report.people == people * len(batch) and report.person_pck >= minimum, report.person_pck


@pytest.mark.slow
def test_a_missing_figure_is_missed_not_matched_to_its_neighbour(scenes):
    """Paint one figure of a scene over: that person scores low, the other keeps its score."""
    from PIL import ImageDraw

    scene = scenes[2][0]
    image = scene.image.copy()
    right = scene.pose.xy[1][scene.pose.present[1]]
    (x0, y0), (x1, y1) = right.min(axis=0) - 4, right.max(axis=0) + 4
    x0 = max(x0, scene.pose.xy[0][scene.pose.present[0], 0].max() + 2)  # keep the left figure whole
    ImageDraw.Draw(image).rectangle([x0, y0, x1, y1], fill=image.getpixel((63, int(y0))))
    report = fidelity(detect(to_tensor(image)[None], "toy", [scene.pose]), [scene.pose])
    assert report.per_person_pck[0] > 0.8 and report.per_person_pck[1] < 0.5, report.per_person_pck


def test_a_missing_mediapipe_is_one_line_not_nobody_found(monkeypatch):
    """Without MediaPipe, `detect` must say how to install it, not count every image as empty."""
    from posedraw.errors import DetectionError

    monkeypatch.setitem(__import__("sys").modules, "mediapipe", None)  # `import mediapipe` raises ImportError
    with pytest.raises(DetectionError, match=r"^--detector mediapipe: needs .*posedraw\[detect\]"):
        detect(torch.zeros(2, 3, 64, 64), "mediapipe")


def test_the_report_and_fidelity_share_one_detector_loader(tmp_path):
    """`eval report`'s detector is fidelity's: a weights file detects as the shipped toy detector does."""
    from posedraw.eval import fidelity as fidelity_module
    from posedraw.eval import report
    from posedraw.eval.toy_detector import WEIGHTS

    assert report.load_detector is fidelity_module.load_detector
    scene = make_toy_sample(HELD_OUT, 64)
    images = to_tensor(scene.image)[None]
    by_path = fidelity_module.load_detector(str(WEIGHTS))(images, [scene.pose])
    by_name = detect(images, "toy", [scene.pose])
    assert np.allclose(by_path[0].xy, by_name[0].xy) and (by_path[0].state == by_name[0].state).all()
