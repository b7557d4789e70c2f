"""The toy attribute classifier that judges whether a drawing follows its prompt, and `posedraw eval attributes`."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from posedraw.builtin import builtin_model
from posedraw.data.images import to_tensor
from posedraw.data.toy import make_toy_sample, make_toy_scene
from posedraw.eval.attributes import (
    ATTRIBUTES,
    SCENE_SHARES,
    attribute_accuracy,
    classify,
    held_out_accuracy,
    load_classifier,
    prompt_attributes,
    toy_batch,
    training_scenes,
)
from posedraw.models.vq import load_vq
from posedraw.pipelines.outputs import Job, _save_png, metadata
from posedraw.pose import JOINTS
from tests.cli_helpers import run_cli


def test_a_prompt_names_attributes_by_their_tags():
    named = prompt_attributes("red hair, long hair, blue dress, arms raised")
    assert named == {"hair": ATTRIBUTES["hair"].index("red"), "hair_length": 1,
                     "outfit": ATTRIBUTES["outfit"].index("dress"),
                     "outfit_colour": ATTRIBUTES["outfit_colour"].index("blue")}  # fmt: skip
    assert prompt_attributes("short_hair green_jacket") == {"hair_length": 0, "outfit": 2, "outfit_colour": 2}
    assert prompt_attributes("smile, purple cape") == {}


@pytest.mark.parametrize("through_vq", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_shipped_classifier_reads_held_out_renders(through_vq):
    """Single figures never trained on, as drawn and through the built-in VQ (as generated images are)."""
    vq = load_vq(builtin_model()) if through_vq else None
    report = held_out_accuracy(load_classifier(), count=128, vq=vq)
    # measured on 256 (2026-12-04), attributes whose place is in the picture: renders hair 0.983, length 0.988,
    # outfit 0.980, colour 1.0 (mean 0.988); through the VQ 0.814, 0.940, 0.956, 0.996 (mean 0.928): the VQ
    # blurs the few pixels of a 64 px figure's hair
    assert report.mean >= (0.8 if through_vq else 0.9) and min(report.accuracy.values()) >= 0.7, report.accuracy
    assert min(report.counts.values()) >= 100  # a head, shoulders or torso outside the picture is rare


@pytest.mark.parametrize("people", [2, 3])
def test_the_shipped_classifier_reads_each_figure_of_held_out_scenes(people):
    """Every figure of scenes never trained on, each read at its own joints: small (a 29 px slot among 3)
    and overlapped by its neighbours."""
    report = held_out_accuracy(load_classifier(), count=64, people=people)
    # measured on 256 scenes each (2026-12-04), attributes in the picture: 2 figures hair 0.984, length 0.975,
    # outfit 0.971, colour 0.998 (mean 0.982); 3 figures 0.885, 0.951, 0.973, 0.996 (mean 0.951)
    assert report.mean >= {2: 0.93, 3: 0.88}[people] and min(report.accuracy.values()) >= 0.7, report.accuracy
    assert min(report.counts.values()) >= 64 * people * 0.9


def test_a_scene_gives_one_row_per_figure_with_that_figures_own_attributes():
    seeds = [900_000_000, 900_000_001]
    images, poses, labels = toy_batch(seeds, people=3)
    assert images.shape == (6, 3, 64, 64) and [p.num_people for p in poses] == [1] * 6
    for row, (seed, k) in enumerate((s, k) for s in seeds for k in range(3)):
        scene = make_toy_scene(seed, 64, 3)
        assert torch.equal(images[row], to_tensor(scene.image)) and poses[row].allclose(scene.pose.person(k))
        assert {n: int(labels[n][row]) for n in ATTRIBUTES} == prompt_attributes(scene.person_prompts[k])
    single, _, single_labels = toy_batch(seeds[:1])
    assert torch.equal(single[0], to_tensor(make_toy_sample(seeds[0], 64).image))
    assert {n: int(v[0]) for n, v in single_labels.items()} == prompt_attributes(make_toy_sample(seeds[0], 64).tags)


def test_training_renders_are_scenes_of_every_size_and_never_held_out():
    scenes = training_scenes(seed=3, count=1000)
    assert {people: len(seeds) for people, seeds in scenes.items()} == {
        people: round(1000 * share) for people, share in SCENE_SHARES.items()
    }
    assert sum(len(seeds) for seeds in scenes.values()) == 1000
    assert all(seeds.stop < 900_000_000 for seeds in scenes.values())


def test_the_judge_reads_the_figure_where_its_pose_says():
    """The same renders judged at their own poses, and at those poses moved half the picture sideways:
    the judge reads what lies at the glimpses, so the moved poses agree with the prompts about by chance."""
    images, poses, _ = toy_batch(list(range(900_000_000, 900_000_064)))
    moved = [replace(p, xy=p.xy + np.array([32.0 if p.xy[0, :, 0].mean() < 32 else -32.0, 0.0])) for p in poses]
    prompts = [make_toy_sample(seed, 64).caption for seed in range(900_000_000, 900_000_064)]
    judge = load_classifier()
    own = attribute_accuracy(classify(judge, images, poses), prompts)
    away = attribute_accuracy(classify(judge, images, moved), prompts)
    assert own.mean >= 0.85 and away.mean <= 0.5, (own.accuracy, away.accuracy)


def test_an_attribute_whose_place_is_outside_the_picture_is_not_scored():
    """A figure whose face joints lie above the frame shows no hair colour: its prompt's hair colour is not
    scored (and the outfit, on a torso in the picture, still is)."""
    sample = make_toy_sample(900_000_003, 64)
    pose = sample.pose
    face = [JOINTS.index(j) for j in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    xy = pose.xy.copy()
    xy[0, face, 1] = -5.0  # above the picture, still "present"
    above = replace(pose, xy=xy)
    images = torch.stack([to_tensor(sample.image)] * 2)
    reading = classify(load_classifier(), images, [pose, above])
    assert reading.visible["hair"].tolist() == [True, False]
    assert reading.visible["outfit_colour"].tolist() == [True, True]
    report = attribute_accuracy(reading, [sample.caption] * 2)
    assert report.counts["hair"] == 1 and report.counts["outfit_colour"] == 2


def _render_png(tmp_path, seed: int, prompt: str, scene: bool = False):
    sample = make_toy_scene(seed, 64, 2) if scene else make_toy_sample(seed, 64)
    path = tmp_path / f"r{seed}.png"
    pose = sample.pose.replace(prompts=())  # judged against the whole prompt, not per-person ones
    _save_png(sample.image, path, metadata(Job(pose, f"r{seed}", 0), {"prompt": prompt}, "builtin"))
    return path, sample


def test_eval_attributes_scores_each_image_against_its_own_prompt(capsys, tmp_path):
    """Renders whose prompt is their own caption score high; the same renders with another figure's
    caption score far less."""
    own, swapped = [], []
    for seed in range(900_000_000, 900_000_016):
        own.append(_render_png(tmp_path / "own", seed, make_toy_sample(seed, 64).caption)[0])
        swapped.append(_render_png(tmp_path / "swap", seed, make_toy_sample(seed + 1, 64).caption)[0])
    scores = {}
    for name, paths in (("own", own), ("swapped", swapped)):
        code, _, err = run_cli(capsys, "eval", "attributes", *paths, "--json", tmp_path / f"{name}.json")
        assert code == 0, err
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert scores["own"]["attribute_accuracy"] >= 0.75 and scores["swapped"]["attribute_accuracy"] <= 0.5, scores
    assert set(scores["own"]["per_attribute"]) == set(ATTRIBUTES)


def test_eval_attributes_refuses_prompts_without_attributes(capsys, tmp_path):
    """Nothing to score is one error line: a prompt naming no attribute, or only a scene drawn without
    per-person prompts (skipped with a note: nothing says which figure should show the whole prompt)."""
    scene, _ = _render_png(tmp_path, 1, "red hair", scene=True)
    code, out, err = run_cli(capsys, "eval", "attributes", scene)
    assert code == 2 and "no image's prompt names a toy attribute" in err
    assert out.strip() == "note: 1 images of several people without per-person prompts not scored"
    plain, _ = _render_png(tmp_path, 2, "smile")
    code, _, err = run_cli(capsys, "eval", "attributes", plain)
    assert code == 2 and "no image's prompt names a toy attribute" in err


@pytest.mark.slow
def test_train_attribute_classifier_writes_weights_that_load(capsys, tmp_path):
    """A few steps on a few renders: the weights file appears only at the end and loads as a judge."""
    out = tmp_path / "judge.safetensors"
    code, out_text, err = run_cli(capsys, "train", "attribute-classifier", "--steps", "3", "--renders", "16",
                                  "--out", out)  # fmt: skip
    assert code == 0, err
    assert "trained 3 steps; held-out accuracy (figures per scene) on renders " in out_text
    assert out_text.count("(3)") == 2 and "through the VQ" in out_text  # single figures and scenes apart
    judge = load_classifier(out)
    images, poses, _ = toy_batch([900_000_000, 900_000_001])
    assert set(classify(judge, images, poses).predicted) == set(ATTRIBUTES)
    code, _, err = run_cli(capsys, "train", "attribute-classifier", "--renders", "1", "--out", out)
    assert code == 2 and "--renders" in err
