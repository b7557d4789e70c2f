"""Per-person prompts in the model: each person's prompt bound to that person's tokens and body maps."""

from __future__ import annotations

import pytest
import torch

from posedraw.builtin import builtin_model
from posedraw.config import from_dict
from posedraw.data.toy import make_toy_scene
from posedraw.models.conditioning import PlacedPoseEncoder
from posedraw.models.person_text import body_masks, person_vectors, training_texts
from posedraw.models.text import TagEncoder
from posedraw.models.vq import load_vq
from posedraw.pose import Pose
from posedraw.pose.transforms import flip_horizontal
from posedraw.train.ldm import LatentDiffusionModule, LDMRunConfig, build_pipeline
from tests.binding_world import binding_score, train_binding_model

COLOURS = {"red": (210, 40, 40), "blue": (40, 60, 210)}


def test_each_slot_gets_its_own_persons_prompt_in_left_to_right_order():
    scene = make_toy_scene(4, 64, 2).prompted_pose  # prompts are the figures' tags, left to right
    swapped = Pose.stack([scene.person(1), scene.person(0)])  # the file lists the right one first
    encoder = PlacedPoseEncoder(dim=8, max_people=3, person_prompts=True)
    slots = encoder.prepare([swapped])["person_prompts"][0]
    assert slots == [scene.prompts[0], scene.prompts[1], ""]
    flipped = encoder.prepare([flip_horizontal(scene)])["person_prompts"][0]
    assert flipped == [scene.prompts[1], scene.prompts[0], ""]  # the prompt follows its person


def test_a_persons_prompt_changes_its_own_tokens_and_body_only():
    torch.manual_seed(0)
    encoder = PlacedPoseEncoder(dim=8, max_people=2, person_prompts=True, person_channels=3)
    torch.nn.init.normal_(encoder.binding.to_tokens.weight)  # zero at the start (a fine-tune starts as it was)
    text = TagEncoder(["blue", "red"], dim=8, max_tags=2)
    scene = make_toy_scene(7, 64, 2).prompted_pose
    prepared = encoder.prepare([scene])
    prepared.pop("person_prompts")

    def cond(first: str, second: str):
        return encoder(**prepared, latent_size=(16, 16), person_text=person_vectors(text, [[first, second]]))

    a, b = cond("red", "blue"), cond("red", "red")
    changed = (a.context != b.context).any(dim=-1)[0]
    assert not changed[:17].any() and changed[17:].all()  # only the second person's 17 tokens
    assert torch.equal(a.maps[:, :17], b.maps[:, :17])  # the pose's own maps do not change
    diff = (a.maps[0, 17:] - b.maps[0, 17:]).abs().amax(dim=0)
    xy = prepared["xy"][0]  # (2, 17, 2) in [0, 1], slot order
    second = masks_of(xy, prepared["state"][0])[1]
    assert diff.max() > 0 and diff[second < 1e-3].max() < 1e-3 * diff.max()  # on the second body only
    assert a.maps.shape[1] == encoder.map_channels == 20


def masks_of(xy: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    from posedraw.models.conditioning import joint_maps, limb_maps

    return body_masks(joint_maps(xy, state, (16, 16), 1.0)[None], limb_maps(xy, state, (16, 16), 1.0)[None])[0]


def test_training_texts_move_the_named_tags_out_of_the_bag_or_keep_the_bag():
    torch.manual_seed(0)
    tags = [["2_figures", "red_hair", "blue_dress", "blonde_hair"]] * 200
    people = [["red hair, blue dress", "blonde hair"]] * 200
    bags, persons = training_texts(tags, people, person_share=0.5, tag_dropout=0.0, dropout=0.1)
    per_person = [b for b, p in zip(bags, persons) if any(p)]
    assert all(b == ["2_figures"] for b in per_person)  # the scene's tag stays in the bag
    assert all(p == ["red_hair, blue_dress", "blonde_hair"] for p in persons if any(p))
    bagged = [b for b, p in zip(bags, persons) if not any(p) and b]
    assert all(b == tags[0] for b in bagged)
    dropped = sum(not b and not any(p) for b, p in zip(bags, persons))
    assert 60 < len(per_person) < 130 and 5 < dropped < 40  # about 0.45 / 0.45 / 0.1
    # data without per-person prompts (picture-level tags only) always trains the bag
    bags, persons = training_texts(tags[:20], [["", ""]] * 20, 1.0, 0.0, 0.0)
    assert all(b == tags[0] for b in bags) and not any(any(p) for p in persons)


@pytest.mark.slow
def test_a_tiny_model_binds_each_figures_prompt_to_that_figure():
    """Two-figure scenes whose figures are red or blue, each figure's colour its own prompt: after training,
    swapping the two prompts swaps the colours (16 drawings: 8 held-out scenes, both orders; a model given
    the colours as one bag cannot tell the orders apart: at most about 8, bench/person_binding.py)."""
    score = binding_score(train_binding_model({}, people=2))
    assert score["drawings_right"] >= 14, score  # measured 15 of 16 (2026-12-04)


def test_a_fine_tune_that_adds_per_person_prompts_starts_as_the_model_it_starts_from(tmp_path):
    from posedraw.pipelines import load_pipeline
    from posedraw.train.ldm.export import start_from
    from tests.tiny_world import TINY_TAGS, tiny_text_config, tiny_text_model

    before = load_pipeline(tiny_text_model(tmp_path / "tags", person_prompts=False))
    before.set_progress_bar_config(disable=True)
    module = LatentDiffusionModule(from_dict(LDMRunConfig, tiny_text_config(True)), TagEncoder(TINY_TAGS, dim=16))
    start_from(module, tmp_path / "tags")
    after = build_pipeline(module, load_vq(builtin_model()))
    assert after.pose_encoder.map_channels == before.pose_encoder.map_channels + 4
    scene = make_toy_scene(3, 64, 2)
    run = {"seeds": [0], "steps": 3, "prompt": "smile", "text_guidance": 2.0}
    drawn = after([scene.prompted_pose.replace(prompts=("red hair", "long hair"))], **run).images
    assert torch.allclose(drawn, before([scene.pose], **run).images, atol=1e-5)
    torch.nn.init.normal_(after.unet.conv_in.weight)  # the new inputs, once trained, change the drawing
    assert not torch.allclose(after([scene.pose], **run).images, drawn, atol=1e-3)


def test_a_persons_vector_is_the_mean_of_its_known_tags_in_any_order():
    torch.manual_seed(0)
    text = TagEncoder(["blue", "long", "red"], dim=8, max_tags=3)
    vectors = text.vectors(["red, long", "long, red, purple cape", "", "purple cape", "blue"])
    weight = text.embedding.weight
    assert torch.allclose(vectors[0], (weight[2] + weight[1]) / 2) and torch.allclose(vectors[1], vectors[0])
    assert torch.equal(vectors[2], weight[text.pad]) and torch.equal(vectors[3], vectors[2])  # no known tag
    assert torch.equal(vectors[4], weight[0])  # not diluted by the empty slots


def test_the_binding_learns_at_its_own_rate_and_everything_else_at_the_configured_one():
    from tests.tiny_world import TINY_TAGS, tiny_text_config

    config = tiny_text_config(True)
    config["train"] = {"learning_rate": 1e-4, "binding_lr_scale": 10.0}
    module = LatentDiffusionModule(from_dict(LDMRunConfig, config), TagEncoder(TINY_TAGS, dim=16))
    groups = module.configure_optimizers().param_groups
    binding = {id(p) for p in module.pose_encoder.binding.parameters()}
    assert [g["lr"] for g in groups] == [1e-4, 1e-3]
    assert {id(p) for p in groups[1]["params"]} == binding and not binding & {id(p) for p in groups[0]["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(module.trainable()))


def test_a_negative_prompt_alone_is_only_guided_away_from_never_drawn(tmp_path):
    from posedraw.pipelines import load_pipeline
    from tests.tiny_world import tiny_text_model

    pipe = load_pipeline(tiny_text_model(tmp_path / "person", person_prompts=True))
    pipe.set_progress_bar_config(disable=True)
    pose = make_toy_scene(3, 64, 2).pose
    run = {"seeds": [0], "steps": 3}

    def drawn(**text) -> torch.Tensor:
        return pipe([pose], **run, **text).images

    plain = drawn()
    for negative in ({"negative_prompt": "red hair"}, {"person_negative_prompts": ["red hair", ""]}):
        assert torch.equal(drawn(**negative), plain)  # text guidance 1: nothing to guide, nothing drawn
        assert torch.allclose(drawn(**negative, prompt="red hair", text_guidance=1.0),
                              drawn(prompt="red hair"))  # fmt: skip
        assert not torch.allclose(drawn(**negative, text_guidance=3.0), plain, atol=1e-3)  # pushed away from it
