"""Per-person prompts: parsing `a | b`, keeping them with their people, files, the CLI, refusals, recipes."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from PIL import Image

from posedraw.errors import PosedrawError, PoseError, PoseFormatError
from posedraw.models.conditioning import PlacedPoseEncoder
from posedraw.pipelines import load_pipeline
from posedraw.pipelines.drawing import PERSON_PROMPTS_REFUSED, person_prompts_per_pose
from posedraw.pipelines.outputs import read_png_metadata
from posedraw.pose import Pose, crop, dump_pose, flip_horizontal, pad, pad_to_square, read_pose, resize, write_pose
from posedraw.pose.core import MAX_PROMPT_CHARS
from posedraw.pose.prompts import PromptRequest, check_person_count, split_prompt
from tests.cli_helpers import run_cli
from tests.conftest import poses
from tests.tiny_world import tiny_text_model

REFUSAL = "not trained with per-person prompts"


def named(pose: Pose) -> Pose:
    """The pose with person i prompted "person i" (so any reordering shows)."""
    return pose.replace(prompts=tuple(f"person {i}" for i in range(pose.num_people)))


def two_people(prompts: tuple[str, ...] = ()) -> Pose:
    """Two standing figures side by side on a 256 px canvas, the left one first."""
    rng = np.random.default_rng(0)
    body = rng.uniform(20, 100, (17, 2))
    return Pose(np.stack([body, body + np.array([120, 0])]), np.full((2, 17), 2), 256, 256, prompts=prompts)


# --- parsing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "scene", "expected"),
    [
        ("red hair, blue dress", "", PromptRequest("red hair, blue dress")),
        ("red hair, blue dress | blonde hair, green dress", "",
         PromptRequest("", ("red hair, blue dress", "blonde hair, green dress"))),
        ("  red hair |blonde hair  ", "", PromptRequest("", ("red hair", "blonde hair"))),
        ("| blonde hair", "", PromptRequest("", ("", "blonde hair"))),
        ("a | | c", "beach", PromptRequest("beach", ("a", "", "c"))),
        (" | ", "", PromptRequest()),
        (" | ", "beach", PromptRequest("beach")),
        ("", "beach", PromptRequest("beach")),
        ("", "", PromptRequest()),
    ],
)  # fmt: skip
def test_a_bar_splits_a_prompt_into_one_per_person_in_order_and_the_scene_prompt_joins_them(text, scene, expected):
    assert split_prompt(text, scene) == expected


def test_a_scene_prompt_next_to_a_whole_picture_prompt_is_refused_as_ambiguous():
    with pytest.raises(PosedrawError, match=r"^--scene-prompt: .*--prompt with \|"):
        split_prompt("red hair", "beach")


def test_a_count_that_is_not_the_number_of_people_names_the_option_the_count_and_the_file():
    check_person_count(("a", "b"), 2, "--prompt", "pose.json")
    check_person_count((), 3, "--prompt", "pose.json")  # no per-person prompts: nothing to count
    with pytest.raises(PosedrawError) as error:
        check_person_count(("a", "b", "c"), 2, "--negative-prompt", "pose.json")
    assert str(error.value) == "--negative-prompt: 3 per-person prompts, but pose.json holds 2 people"


# --- the Pose keeps them with their people ----------------------------------------------------------------
def test_prompts_are_one_text_per_person_and_all_empty_is_none():
    pose = two_people(("red hair", ""))
    assert pose.prompts == ("red hair", "") and pose.prompt(0) == "red hair" and pose.prompt(1) == ""
    assert two_people(["", ""]).prompts == () and two_people().prompt(1) == ""
    assert two_people(("", "")).allclose(two_people())  # prompts that say nothing are no prompts
    with pytest.raises(PoseError, match=r"^prompts: expected one per person \(2\), got 3"):
        two_people(("a", "b", "c"))
    with pytest.raises(PoseError, match=r"^prompts\[1\]: expected a text, got int"):
        two_people(("a", 3))  # type: ignore[arg-type]
    with pytest.raises(PoseError, match=r"^prompts: expected a sequence"):
        two_people("ab")  # type: ignore[arg-type]
    with pytest.raises(PoseError, match=rf"^prompts\[0\]: expected at most {MAX_PROMPT_CHARS} characters"):
        two_people(("x" * (MAX_PROMPT_CHARS + 1), ""))


@given(poses(max_people=4))
def test_selecting_stacking_and_reordering_people_keeps_each_prompt_with_its_person(pose):
    pose = named(pose)
    people = pose.num_people
    for i in range(people):
        assert pose.person(i).prompts == (f"person {i}",) and pose.person(i - people).prompts == (f"person {i}",)
    backwards = Pose.stack([pose.person(i) for i in reversed(range(people))])
    assert backwards.prompts == tuple(f"person {i}" for i in reversed(range(people)))
    unprompted = pose.replace(prompts=())
    assert Pose.stack([unprompted, pose]).prompts == ("",) * people + pose.prompts
    assert Pose.stack([unprompted, unprompted]).prompts == ()


@given(poses(max_people=3))
def test_transforms_pickling_and_replace_keep_the_prompts_and_equality_compares_them(pose):
    pose = named(pose)
    moved = [flip_horizontal(pose), crop(pose, 5, 5, pose.width / 2, pose.height / 2), pad(pose, 3, 4, 5, 6),
             pad_to_square(pose), resize(pose, 64, 32), pose.replace(xy=pose.xy + 1)]  # fmt: skip
    for result in moved:
        assert result.prompts == pose.prompts
    assert pickle.loads(pickle.dumps(pose)).allclose(pose)
    other = pose.replace(prompts=("someone else", *pose.prompts[1:]))
    assert not other.allclose(pose) and not pose.allclose(pose.replace(prompts=()))


# --- files -----------------------------------------------------------------------------------------------
def test_posedraw_json_round_trips_each_persons_prompt_and_writes_none_for_people_without(tmp_path):
    pose = two_people(("red hair, blue dress", ""))
    write_pose(pose, tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["people"][0]["prompt"] == "red hair, blue dress" and "prompt" not in doc["people"][1]
    back = read_pose(tmp_path / "p.json")
    assert back.prompts == pose.prompts and back.allclose(pose)
    assert "prompt" not in json.dumps(dump_pose(two_people()))  # files without prompts are as before


@pytest.mark.parametrize(
    ("value", "message"),
    [(3, "people[1].prompt: expected a text (what to draw for this person), got 3"),
     (["red"], "people[1].prompt: expected a text (what to draw for this person), got list of length 1"),
     (None, "people[1].prompt: expected a text"),
     ("x" * (MAX_PROMPT_CHARS + 1), f"people[1].prompt: expected a text of at most {MAX_PROMPT_CHARS} characters")],
)  # fmt: skip
def test_a_prompt_that_is_not_a_text_is_one_error_naming_the_file_and_the_field(tmp_path, value, message):
    doc = dump_pose(two_people())
    doc["people"][1]["prompt"] = value
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(PoseFormatError) as error:
        read_pose(tmp_path / "bad.json")
    assert str(error.value).startswith(f"{tmp_path / 'bad.json'}: {message}") and "\n" not in str(error.value)


@pytest.mark.parametrize("fmt", ["openpose", "openpose25", "coco", "danbooru"])
def test_formats_without_prompts_drop_them_with_a_note(fmt):
    pose = two_people(("red hair", "blonde hair"))
    pose = pose.person(1) if fmt == "danbooru" else pose  # a danbooru file holds one person
    notes: list[str] = []
    dump_pose(pose, fmt, notes=notes)
    assert len(notes) == 1 and "per-person prompts (only posedraw JSON holds them)" in notes[0]
    quiet: list[str] = []
    dump_pose(pose.replace(prompts=()), fmt, notes=quiet)
    assert not any("prompt" in note for note in quiet)


def test_pose_convert_prints_the_dropped_prompts_note_and_pose_show_lists_who_is_who(capsys, tmp_path):
    write_pose(two_people(("red hair", "")), tmp_path / "p.json")
    code, out, err = run_cli(capsys, "pose", "convert", tmp_path / "p.json", tmp_path / "o.json", "--to", "openpose")
    assert code == 0 and "note: left out of" in err and "per-person prompts" in err
    code, out, _ = run_cli(capsys, "pose", "show", tmp_path / "p.json")
    pose = read_pose(tmp_path / "p.json")
    lines = [line for line in out.splitlines() if line.startswith("person ") and ": box" in line]
    boxes = [pose.xy[p].min(axis=0).tolist() + pose.xy[p].max(axis=0).tolist() for p in range(2)]
    assert code == 0 and len(lines) == 2
    assert lines[0] == "person 0: box x0 {:.1f} y0 {:.1f} x1 {:.1f} y1 {:.1f} px, prompt 'red hair'".format(*boxes[0])
    assert lines[1] == "person 1: box x0 {:.1f} y0 {:.1f} x1 {:.1f} y1 {:.1f} px, no prompt".format(*boxes[1])
    assert out.index(lines[1]) < out.index("person 0\n")  # the people first, then their joint tables


# --- pipelines -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Model names and folders: tiny untrained diffusion models with tags, with and without per-person prompts,
    and the built-in transformer (no text at all)."""
    root = tmp_path_factory.mktemp("models")
    return {"tags": str(tiny_text_model(root / "tags", person_prompts=False)),
            "person": str(tiny_text_model(root / "person", person_prompts=True)),
            "builtin:transformer": "builtin:transformer"}  # fmt: skip


@pytest.fixture(scope="module")
def pipelines(models):
    found = {name: load_pipeline(folder) for name, folder in models.items()}
    for pipe in found.values():
        pipe.set_progress_bar_config(disable=True)
    return found


@pytest.mark.parametrize("name", ["tags", "builtin:transformer"])
def test_a_model_without_per_person_prompts_refuses_them_given_or_on_the_pose_in_one_line(pipelines, name):
    pipe, one = pipelines[name], two_people().person(0)
    fast = {"steps": 2} if "steps" in pipe.options else {}
    assert not pipe.takes_person_prompts
    for call in ({"person_prompts": ["red hair"]}, {"person_negative_prompts": [["long hair"]]}):
        with pytest.raises(PosedrawError) as error:
            pipe([one], seeds=[0], **fast, **call)
        assert REFUSAL in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(PosedrawError, match=REFUSAL):
        pipe([one.replace(prompts=("red hair",))], seeds=[0], **fast)  # the pose's own
    with pytest.raises(PosedrawError, match=rf"^--prompt: {re.escape(PERSON_PROMPTS_REFUSED)}$"):
        pipe.check_options({"person_prompts": [("red hair",)]})  # the one check the CLI and studio call
    if pipe.takes_text:  # (a model without text takes no text option at all, as for --prompt)
        pipe.check_options({"person_prompts": [("", "")]})  # prompts that say nothing are no prompts
    assert pipe([one], seeds=[0], person_prompts=[""], **fast).images.shape[0] == 1  # an empty one is none


def test_given_per_person_prompts_win_over_the_poses_own_and_must_match_each_poses_people():
    mine, plain = two_people(("file a", "file b")), two_people()
    assert person_prompts_per_pose(None, [mine, plain], "person_prompts") == [("file a", "file b"), ()]
    assert person_prompts_per_pose(["a", "b"], [mine, plain], "person_prompts") == [("a", "b")] * 2
    assert person_prompts_per_pose([["", ""], ["x", "y"]], [mine, plain], "person_prompts") == [
        ("file a", "file b"), ("x", "y")]  # fmt: skip
    assert person_prompts_per_pose(None, [mine], "person_negative_prompts") == [()]  # negatives: given only
    with pytest.raises(PosedrawError, match=r"^person_prompts: 3 per-person prompts, but pose 1 holds 2 people"):
        person_prompts_per_pose([["a", "b"], ["a", "b", "c"]], [mine, plain], "person_prompts")
    with pytest.raises(PosedrawError, match=r"^person_prompts: expected one list per pose \(2\), got 1"):
        person_prompts_per_pose([["a", "b"]], [mine, plain], "person_prompts")
    with pytest.raises(PosedrawError, match=r"^person_prompts: expected one text per person"):
        person_prompts_per_pose("a | b", [mine], "person_prompts")


@pytest.fixture
def seen_prompts(monkeypatch):
    """The per-person prompts of every batch of poses a pose encoder prepares, recorded."""
    seen: list = []
    prepare = PlacedPoseEncoder.prepare

    def recording(self, poses):
        seen.append([pose.prompts for pose in poses])
        return prepare(self, poses)

    monkeypatch.setattr(PlacedPoseEncoder, "prepare", recording)
    return seen


def test_a_model_trained_with_them_binds_each_poses_prompts_and_negatives(pipelines, seen_prompts):
    pipe = pipelines["person"]
    assert pipe.takes_person_prompts
    poses = [two_people(("file a", "file b")), two_people()]
    pipe(poses, seeds=[0, 1], steps=1, text_guidance=2.0, person_prompts=[["", ""], ["x", "y"]],
         person_negative_prompts=[["", "n"], ["", ""]])  # fmt: skip
    assert [("file a", "file b"), ("x", "y")] in seen_prompts  # the branch with text
    assert [("", "n"), ()] in seen_prompts  # the branch without: each person's negative (or none)
    first = pipe(poses[:1], seeds=[0], steps=2, person_prompts=[["red hair", "blonde hair"]]).images
    swapped = pipe(poses[:1], seeds=[0], steps=2, person_prompts=[["blonde hair", "red hair"]]).images
    assert not torch.equal(first, swapped)  # whose prompt is whose changes the drawing


# --- the command line ------------------------------------------------------------------------------------
def test_generate_refuses_a_wrong_count_and_a_model_without_per_person_prompts_before_writing(capsys, tmp_path, models):
    write_pose(two_people(), tmp_path / "p.json")
    out = tmp_path / "out"
    base = ("generate", "--model", models["tags"], "--pose", tmp_path / "p.json", "--out", out, "--steps", "1")
    code, _, err = run_cli(capsys, *base, "--prompt", "a | b | c")
    expected = f"error: --prompt: 3 per-person prompts, but {tmp_path / 'p.json'} holds 2 people\n"
    assert code == 2 and err == expected
    code, _, err = run_cli(capsys, *base, "--prompt", "red hair | blonde hair")
    assert code == 2 and REFUSAL in err and len(err.splitlines()) == 1
    code, _, err = run_cli(capsys, *base, "--negative-prompt", "| long hair")
    assert code == 2 and err.startswith("error: --negative-prompt: ") and REFUSAL in err
    write_pose(two_people(("red hair", "")), tmp_path / "p.json")
    code, _, err = run_cli(capsys, *base, "--prompt", "smile")  # the file's own, next to a whole-picture prompt
    assert code == 2 and REFUSAL in err
    assert not list(out.glob("*.png"))
    code, _, err = run_cli(capsys, *base, "--prompt", "smile", "--scene-prompt", "beach")
    assert code == 2 and err.startswith("error: --scene-prompt: ")


def test_the_recipe_keeps_the_per_person_prompts_and_from_png_redraws_the_same_request(
    capsys, tmp_path, models, seen_prompts
):
    write_pose(two_people(("file a", "file b")), tmp_path / "p.json")
    out, again = tmp_path / "out", tmp_path / "again"
    code, _, err = run_cli(capsys, "generate", "--model", models["person"], "--pose", tmp_path / "p.json", "--out",
                           out, "--steps", "2", "--prompt", "red hair | blonde hair", "--scene-prompt", "smile",
                           "--negative-prompt", "| long hair", "--text-guidance", "2")  # fmt: skip
    assert code == 0, err
    [png] = out.glob("*.png")
    job, options, model = read_png_metadata(png)
    assert job.pose.prompts == ("red hair", "blonde hair")  # the command line's win over the file's
    assert options["prompt"] == "smile" and list(options["person_negative_prompts"]) == ["", "long hair"]
    assert model == models["person"]
    assert [("red hair", "blonde hair")] in seen_prompts and [("", "long hair")] in seen_prompts
    seen_prompts.clear()
    code, _, err = run_cli(capsys, "generate", "--from-png", png, "--out", again)
    assert code == 0, err
    assert [("red hair", "blonde hair")] in seen_prompts and [("", "long hair")] in seen_prompts
    redrawn = again / png.name
    job_again, options_again, _ = read_png_metadata(redrawn)
    assert options_again == options and job_again.pose.allclose(job.pose) and job_again.seed == job.seed
    assert np.array_equal(np.asarray(Image.open(redrawn)), np.asarray(Image.open(png)))
