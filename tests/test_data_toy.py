"""Synthetic figures: deterministic, varied, and their poses sit on what is drawn, also after augmentation."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from posedraw.data.augment import Augmentation, augment
from posedraw.data.poses import KINDS, example_pose, sample_pose
from posedraw.data.toy import _background, make_toy_sample, random_appearance, render_figure
from posedraw.pose import JOINTS, read_pose

from .conftest import REPO

# the head is drawn around the face joints; ears can sit right at its rim, so they are not checked
EXAMPLES = REPO / "examples" / "poses"
CHECKED = [j for j, name in enumerate(JOINTS) if "ear" not in name]


def _figure_and_background(seed: int, size: int = 96):
    rng = np.random.default_rng(seed)
    sampled = sample_pose(rng, size)
    appearance = random_appearance(rng)
    figure = render_figure(sampled.full, sampled.head_size, appearance, size)
    return figure, _background(size, appearance.background), sampled.label


def _on_figure(figure, background, pose) -> float:
    """Fraction of visible checked joints whose 3x3 neighbourhood differs from the empty background."""
    a = np.asarray(figure, dtype=np.int16)
    b = np.asarray(background, dtype=np.int16)
    hits = total = 0
    for j in CHECKED:
        if not pose.visible[0, j]:
            continue
        x, y = (int(v) for v in np.clip(pose.xy[0, j], 0, figure.width - 1))
        window = (slice(max(0, y - 1), y + 2), slice(max(0, x - 1), x + 2))
        hits += bool((np.abs(a[window] - b[window]).sum(axis=-1) > 30).any())
        total += 1
    return hits / max(total, 1)


def test_toy_samples_are_deterministic_per_seed():
    a, b, c = make_toy_sample(3), make_toy_sample(3), make_toy_sample(4)
    assert a.image.tobytes() == b.image.tobytes() and a.pose.allclose(b.pose) and a.caption == b.caption
    assert a.image.tobytes() != c.image.tobytes()


def test_joints_sit_on_the_drawn_figure():
    scores = [_on_figure(*_figure_and_background(seed)) for seed in range(40)]
    assert min(scores) >= 0.85 and np.mean(scores) >= 0.97


@pytest.mark.parametrize("seed", range(12))
def test_crop_and_flip_keep_joints_on_the_figure(seed):
    figure, background, pose = _figure_and_background(seed)
    aug = Augmentation(min_scale=0.6, flip=0.5)
    fig_aug, pose_aug = augment(figure, pose, 64, random.Random(seed), aug)
    bg_aug, _ = augment(background, pose, 64, random.Random(seed), aug)
    assert _on_figure(fig_aug, bg_aug, pose_aug) >= 0.85
    assert (pose_aug.inside_canvas() == pose_aug.present).all()  # pushed-out joints became absent


def test_flip_in_augmentation_swaps_left_and_right():
    figure, _, pose = _figure_and_background(1)
    always = Augmentation(min_scale=1.0, flip=1.0)
    _, flipped = augment(figure, pose, figure.width, random.Random(0), always)
    left, right = JOINTS.index("left_wrist"), JOINTS.index("right_wrist")
    if pose.visible[0, left] and pose.visible[0, right]:
        assert flipped.xy[0, right, 0] == pytest.approx(figure.width - pose.xy[0, left, 0])


def test_pose_sampler_covers_kinds_mirroring_and_partial_frames():
    rng = np.random.default_rng(0)
    samples = [sample_pose(rng, 64) for _ in range(300)]
    assert Counter(s.kind for s in samples).keys() == set(KINDS)
    assert 0.3 < np.mean([s.mirrored for s in samples]) < 0.7
    partial = [s for s in samples if s.out_of_frame]
    assert 0.05 < len(partial) / len(samples) < 0.4
    assert any(not s.label.present.all() for s in partial)  # some joints really left the frame
    for s in samples:
        left, right = s.full.xy[0, JOINTS.index("left_shoulder"), 0], s.full.xy[0, JOINTS.index("right_shoulder"), 0]
        assert left > right  # facing the viewer: the figure's left is on the image's right, mirrored or not
        if s.kind == "waving":  # a mirrored figure waves with the other arm
            raised = "right" if s.mirrored else "left"
            wrist, shoulder = JOINTS.index(f"{raised}_wrist"), JOINTS.index(f"{raised}_shoulder")
            assert s.full.xy[0, wrist, 1] < s.full.xy[0, shoulder, 1]
        if s.kind == "arms_raised":
            for side in ("left", "right"):
                wrist, shoulder = JOINTS.index(f"{side}_wrist"), JOINTS.index(f"{side}_shoulder")
                assert s.full.xy[0, wrist, 1] < s.full.xy[0, shoulder, 1]


def test_captions_and_tags_describe_the_figure():
    sample = make_toy_sample(11)
    hair, _, outfit, kind = sample.caption.split(", ")
    assert f"{hair.split()[0]}_hair" in sample.tags and kind.replace(" ", "_") == sample.kind
    assert outfit.replace(" ", "_") in sample.tags


@pytest.mark.parametrize("people", [2, 3])
def test_scenes_hold_their_figures_left_to_right_on_the_drawing(people):
    from posedraw.data.toy import _background, make_toy_scene

    for seed in range(12):
        scene = make_toy_scene(seed, 96, people)
        assert scene.pose.num_people == people and scene.tags[0] == f"{people}_figures"
        centres = [np.nanmean(scene.pose.xy[p, :, 0]) for p in range(people)]
        assert centres == sorted(centres)  # left to right
        assert scene.pose.inside_canvas()[scene.pose.present].all()
        assert make_toy_scene(seed, 96, people).image.tobytes() == scene.image.tobytes()
    # the joints of every figure sit on drawn pixels (the background is the first figure's)
    rng_scene = make_toy_scene(5, 96, people)
    background = _background(96, random_appearance(np.random.default_rng([5, people])).background)
    for p in range(people):
        assert _on_figure(rng_scene.image, background, rng_scene.pose.person(p)) >= 0.8


@pytest.mark.parametrize("people", [2, 3])
def test_a_scene_with_asked_for_looks_keeps_its_poses_and_gives_each_figure_its_look(people):
    from posedraw.data.toy import make_toy_scene

    looks = [{"hair": "red", "outfit_colour": "green"}, {"hair": "blue", "long_hair": True},
             {"outfit": "jacket"}][:people]  # fmt: skip
    for seed in range(8):
        plain, asked = make_toy_scene(seed, 64, people), make_toy_scene(seed, 64, people, looks)
        assert asked.pose.allclose(plain.pose) and asked.image.tobytes() != plain.image.tobytes()
        prompts = asked.person_prompts  # left to right, the label's order
        assert prompts[0].startswith("red hair") and "green " in prompts[0]
        assert prompts[1].startswith("blue hair, long hair")
        if people == 3:
            assert " jacket" in prompts[2]
        for k in range(people):  # what was not asked for stays as drawn at random:
            assert prompts[k].split(", ")[3:] == plain.person_prompts[k].split(", ")[3:]  # eyes, pose kind


def test_toy_data_with_scenes_mixes_one_to_three_figures():
    from posedraw.data.toy import ToyMaker, make_toy_sample

    maker = ToyMaker(64, max_people=3)
    counts = Counter(maker(seed)[0].meta["people"] for seed in range(300))
    assert set(counts) == {1, 2, 3} and counts[1] > counts[3]
    single = next(seed for seed in range(300) if maker(seed)[0].meta["people"] == 1)
    assert maker(single)[0].image.tobytes() == make_toy_sample(single, 64).image.tobytes()
    assert ToyMaker(64)(7)[0].pose.num_people == 1


@pytest.mark.parametrize("kind", KINDS)
def test_the_shipped_example_poses_are_the_samplers_example_poses(kind):
    """examples/poses (the studio's presets) were made by `example_pose`: the sampler still makes them, joint for
    joint, so a change to the sampler that would change the toy data for the same seeds shows here."""
    shipped = read_pose(EXAMPLES / f"{kind}.json")
    made = example_pose(kind)
    assert np.array_equal(shipped.state, made.state)
    np.testing.assert_allclose(shipped.xy, made.xy, rtol=0, atol=1e-9)
