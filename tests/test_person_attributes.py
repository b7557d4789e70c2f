"""Each person of a scene judged against its own prompt: hits, leakage (drawn as another person of the same
picture asked for) and other errors; `posedraw eval attributes` on scenes drawn with per-person prompts."""

from __future__ import annotations

import json

import torch

from posedraw.cli.evaluate import person_prompts
from posedraw.data.toy import make_toy_sample, make_toy_scene
from posedraw.eval.attributes import ATTRIBUTES, Reading, person_attribute_scores
from posedraw.pipelines.outputs import Job, _save_png, metadata
from tests.cli_helpers import run_cli


def reading(rows: list[dict[str, str]], hidden: dict[int, str] | None = None) -> Reading:
    """A hand-made reading: per row (person) the value drawn of each attribute, by name ("red", "long",
    "dress"); `hidden` maps a row to an attribute whose place is outside the picture."""
    predicted = {name: torch.tensor([values.index(row[name]) for row in rows]) for name, values in ATTRIBUTES.items()}
    visible = {name: torch.tensor([(hidden or {}).get(r) != name for r in range(len(rows))]) for name in ATTRIBUTES}
    return Reading(predicted, visible)


def drawn(hair: str, length: str, outfit: str, colour: str) -> dict[str, str]:
    return {"hair": hair, "hair_length": length, "outfit": outfit, "outfit_colour": colour}


def test_a_miss_drawn_as_another_person_asked_is_a_leak_and_any_other_miss_is_not():
    prompts = ["red hair, long hair, blue dress", "black hair, short hair, red shirt", "blonde hair"]
    scene_of = [0, 0, 1]
    report = person_attribute_scores(reading([
        drawn("black", "long", "dress", "green"),  # hair: the other person's (leak); colour: nobody's (other)
        drawn("black", "long", "jacket", "red"),  # length: the other person's (leak); outfit: nobody's (other)
        drawn("black", "short", "dress", "red"),  # black hair was asked for in another picture only (other)
    ]), prompts, scene_of)  # fmt: skip
    assert report.scored == {"hair": 3, "hair_length": 2, "outfit": 2, "outfit_colour": 2}
    assert report.hits == {"hair": 1, "hair_length": 1, "outfit": 1, "outfit_colour": 1}
    assert report.leaks == {"hair": 1, "hair_length": 1, "outfit": 0, "outfit_colour": 0}
    assert report.accuracy == 4 / 9 and report.leakage == 2 / 9
    summary = report.as_dict()
    assert (summary["scored"], summary["leaks"]) == (9, 2)
    assert summary["per_attribute"]["hair"] == {"scored": 3, "accuracy": round(1 / 3, 4), "leakage": round(1 / 3, 4)}


def test_values_people_share_are_hits_and_unseen_or_unnamed_attributes_are_not_scored():
    prompts = ["pink hair, blue dress", "pink hair, blue dress", ""]
    rows = [drawn("pink", "long", "dress", "blue"), drawn("pink", "short", "dress", "blue"),
            drawn("white", "long", "shirt", "red")]  # fmt: skip
    report = person_attribute_scores(reading(rows, hidden={1: "hair"}), prompts, [0, 0, 0])
    assert report.scored == {"hair": 1, "outfit": 2, "outfit_colour": 2}  # no length named; row 1's head unseen
    assert report.accuracy == 1.0 and report.leakage == 0.0


def test_a_drawing_asks_for_its_per_person_prompts_else_a_single_figure_its_prompt():
    scene = make_toy_scene(5, 64, 2).pose.replace(prompts=())
    single = make_toy_sample(5, 64).pose.replace(prompts=())
    assert person_prompts(scene.replace(prompts=("red hair", "")), {"prompt": "two girls"}) == ["red hair", ""]
    given = {"person_prompts": ["a", "b"], "prompt": ""}  # the call's option wins over the pose's own
    assert person_prompts(scene.replace(prompts=("red hair", "")), given) == ["a", "b"]
    assert person_prompts(scene, {"prompt": "red hair"}) == []  # a scene without them: nothing per person
    assert person_prompts(single, {"prompt": "red hair"}) == ["red hair"]


def scene_pngs(folder, seeds: range, swap: bool) -> list:
    """2-figure toy renders written with the real recipe writer, each figure's own tags as its prompt (the
    label's own prompts where it carries them, else the caption's parts: figures left to right, as the label
    lists them); with `swap`, the two prompts exchanged."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        scene = make_toy_scene(seed, 64, 2)
        people = scene.pose.prompts or tuple(scene.caption.split("; "))
        pose = scene.pose.replace(prompts=people[::-1] if swap else people)
        paths.append(folder / f"s{seed}.png")
        _save_png(scene.image, paths[-1], metadata(Job(pose, f"s{seed}", 0), {"prompt": ""}, "builtin"))
    return paths


def test_eval_attributes_scores_each_figure_of_a_scene_against_its_own_prompt(capsys, tmp_path):
    """True renders score high with little leakage; the same renders with the two prompts swapped leak."""
    seeds = range(900_000_000, 900_000_016)
    scores = {}
    for name in ("own", "swapped"):
        paths = scene_pngs(tmp_path / name, seeds, swap=name == "swapped")
        code, out, err = run_cli(capsys, "eval", "attributes", *paths, "--json", tmp_path / f"{name}.json")
        assert code == 0, err
        assert out.startswith("16 images, 32 people: attribute accuracy ") and " leakage " in out
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    own, swapped = scores["own"], scores["swapped"]
    assert own["attribute_accuracy"] >= 0.8 and own["leakage"] <= 0.1, own
    assert swapped["leakage"] >= 0.45 and swapped["attribute_accuracy"] <= 0.45, swapped
    assert own["scored"] == sum(a["scored"] for a in own["per_attribute"].values()) >= 100


def test_eval_attributes_skips_scenes_without_per_person_prompts_with_a_note(capsys, tmp_path):
    paths = []
    for toy in (make_toy_scene(7, 64, 2), make_toy_sample(7, 64)):  # drawn with a whole-picture prompt only
        paths.append(tmp_path / f"{toy.pose.num_people}.png")
        job = Job(toy.pose.replace(prompts=()), paths[-1].stem, 0)
        _save_png(toy.image, paths[-1], metadata(job, {"prompt": toy.caption}, "builtin"))
    code, out, err = run_cli(capsys, "eval", "attributes", *paths)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "note: 1 images of several people without per-person prompts not scored"
    assert lines[1].startswith("1 images, 1 people: attribute accuracy ") and "leakage 0.000" in lines[1]
