"""Extreme values for every option and pose coordinate of both built-in models, through `posedraw generate`
and the studio's `/api/preview`: the answer is a one-line error (exit 2) or a 4xx, or a drawing whose numbers
are all finite; never a traceback, a 5xx or an image drawn from inf or nan.

Hypothesis draws the values (huge, tiny, subnormal, negative zero, inf, nan, out of range by a little) from a
fixed list and from all floats, derandomized, with few examples and at most 2 diffusion steps so each property
takes seconds. The CLI runs in-process with the built-in models loaded once (`load_pipeline` patched to
return them): everything after loading is the real command.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import posedraw.pipelines
from posedraw.pipelines import DrawingPipeline, load_pipeline
from posedraw.pipelines.samplers import SAMPLERS
from posedraw.pose import Pose, parse_pose
from posedraw.pose.core import MAX_CANVAS, MAX_COORDINATE

from .cli_helpers import run_cli

MODELS = ("builtin:diffusion", "builtin:transformer")
STANDING = json.loads((Path(__file__).parents[1] / "examples" / "poses" / "standing.json").read_text())

FLOATS = [1e308, -1e308, 1e-308, 5e-324, -0.0, 0.0, math.inf, -math.inf, math.nan, 1e30, -1.0, 0.5, 1.0, 2.0,
          30.0, 30.000001, 10.5, 0.009, 1e-7]  # fmt: skip
INTEGERS = [-(10**30), -1, 0, 1, 2, 1001, 2**63, 10**30]  # steps: never a valid count above 2 (kept fast)
extreme_floats = st.one_of(st.sampled_from(FLOATS), st.floats())
extreme_integers = st.sampled_from(INTEGERS)
texts = st.text(max_size=12)

#: a strategy for every option a request may set; `test_every_option_has_a_strategy` keeps it complete
OPTION_VALUES = {
    "sampler": st.sampled_from([*SAMPLERS, "heun", ""]),
    "steps": extreme_integers,
    "eta": extreme_floats,
    "guidance": extreme_floats,
    "prompt": texts,
    "negative_prompt": texts,
    "text_guidance": extreme_floats,
    "temperature": extreme_floats,
    "top_k": extreme_integers,
    "top_p": extreme_floats,
}
#: options of the command line only (a file and an output switch) and per-person prompts (no flag of their own:
#: `--prompt "a | b"`), tested elsewhere (tests/test_person_prompts.py)
NOT_DRAWN = ("latents", "progress_row", "person_prompts", "person_negative_prompts")


@functools.cache
def pipelines() -> dict[str, DrawingPipeline]:
    return {name: load_pipeline(name) for name in MODELS}


@pytest.fixture(scope="module")
def loaded() -> Iterator[dict[str, DrawingPipeline]]:
    """`load_pipeline` returning the built-in models loaded once, for the in-process CLI."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(posedraw.pipelines, "load_pipeline", lambda model, *args, **kwargs: pipelines()[model])
        yield pipelines()


def few_steps(model: str, options: dict) -> dict:
    """Diffusion at 1 step unless the example sets steps (its values are invalid or at most 2)."""
    return {"steps": 1, **options} if model == "builtin:diffusion" else options


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict]:
    """A model and a few of its options (and, now and then, one it does not take) at extreme values."""
    model = draw(st.sampled_from(MODELS))
    names = sorted(n for n in pipelines()[model].options if n not in NOT_DRAWN)
    names = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    if draw(st.integers(0, 4)) == 0:
        names.append(draw(st.sampled_from(sorted(OPTION_VALUES))))
    return model, few_steps(model, {name: draw(OPTION_VALUES[name]) for name in names})


@st.composite
def extreme_poses(draw: st.DrawFn) -> dict:
    """The standing pose with one joint coordinate or a canvas side replaced by an extreme value."""
    doc = copy.deepcopy(STANDING)
    value = draw(extreme_floats)
    if draw(st.booleans()):
        doc["canvas"][draw(st.sampled_from(["width", "height"]))] = value
    else:
        joint = draw(st.sampled_from(sorted(doc["people"][0]["joints"])))
        doc["people"][0]["joints"][joint][draw(st.sampled_from(["x", "y"]))] = value
    return doc


def flags(options: dict) -> list[str]:
    """The command line for `options` (`--name=value`, so that a negative number is never read as a flag)."""
    return [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]


def check_generate(capsys, tmp_path: Path, model: str, pose: dict, options: dict, seed: int = 7) -> None:
    """One `generate`: a one-line error with exit 2, or a PNG and a finite final latent."""
    (tmp_path / "pose.json").write_text(json.dumps(pose))  # nan and inf as JSON's NaN / Infinity
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "generate", "--model", model, "--pose", tmp_path / "pose.json",
                           f"--seed={seed}", *flags(options), "--save-latent", "--out", out)  # fmt: skip
    if code != 0:
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (options, err)
        assert not out.exists() or not list(out.glob("*.png")), options
        return
    [png] = list(out.glob("*.png"))
    assert np.isfinite(np.load(png.with_name(png.stem + ".latent.npy"))).all(), options
    for path in out.iterdir():
        path.unlink()


def test_every_option_has_a_strategy():
    for pipeline in pipelines().values():
        assert set(pipeline.options) - set(NOT_DRAWN) <= set(OPTION_VALUES)


#: capsys and tmp_path serve every example: run_cli reads capsys empty, check_generate empties its folder
SHARED_FIXTURES = [HealthCheck.function_scoped_fixture]


@settings(max_examples=12, suppress_health_check=SHARED_FIXTURES)
@given(request=requests())
@pytest.mark.slow
def test_generate_with_extreme_options_is_one_line_or_a_finite_drawing(capsys, tmp_path, loaded, request):
    model, options = request
    check_generate(capsys, tmp_path, model, STANDING, options)


@settings(max_examples=10, suppress_health_check=SHARED_FIXTURES)
@given(model=st.sampled_from(MODELS), pose=extreme_poses())
@pytest.mark.slow
def test_generate_with_extreme_pose_coordinates_is_one_line_or_a_finite_drawing(capsys, tmp_path, loaded, model, pose):
    check_generate(capsys, tmp_path, model, pose, few_steps(model, {}))


def test_the_issue_s_examples_are_refused_before_any_drawing(capsys, tmp_path, loaded):
    """The values that crashed or drew black, and seeds torch cannot take: each is a one-line error naming
    its option or field."""
    cases = [
        ("builtin:transformer", {"temperature": 1e-308}, "--temperature: expected a number from 0.01 to 10"),
        ("builtin:transformer", {"top_p": 1e-308}, "--top-p: expected a number from 0.000001 to 1"),
        ("builtin:transformer", {"guidance": 1e308}, "--guidance: expected a number from 0 to 30"),
        ("builtin:diffusion", {"guidance": 1e308}, "--guidance: expected a number from 0 to 30"),
        ("builtin:diffusion", {"text_guidance": 1e308}, "--text-guidance: expected a number from 0 to 30"),
        ("builtin:diffusion", {"sampler": "ddim", "eta": 1e308}, "--eta: expected a number from 0 to 1"),
        ("builtin:diffusion", {"eta": 0.5}, "--eta: only the ddim sampler has an eta"),
        ("builtin:diffusion", {"sampler": "euler", "eta": 0.5}, "--eta: only the ddim sampler has an eta"),
        ("builtin:diffusion", {"sampler": "ddim", "steps": 1000}, "--steps: at most 999 for this sampler"),
        ("builtin:diffusion", {"steps": 1001}, "--steps: expected an integer from 1 to 1000"),
    ]
    largest = 2**63 - 2
    cases += [
        ("builtin:transformer", {"seed": -1}, f"--seed: expected a whole number from 0 to {largest}"),
        ("builtin:diffusion", {"seed": 10**30}, f"--seed: expected a whole number from 0 to {largest}"),
        ("builtin:diffusion", {"seed": largest, "num": 2}, "--num (the last seed, --seed + --num - 1): expected"),
    ]
    (tmp_path / "pose.json").write_text(json.dumps(STANDING))
    for model, options, message in cases:
        code, _, err = run_cli(capsys, "generate", "--model", model, "--pose", tmp_path / "pose.json",
                               *flags(options), "--out", tmp_path / "out")  # fmt: skip
        assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    far = copy.deepcopy(STANDING)
    far["people"][0]["joints"]["nose"]["x"] = 1e308
    (tmp_path / "pose.json").write_text(json.dumps(far))
    code, _, err = run_cli(capsys, "generate", "--pose", tmp_path / "pose.json", "--out", tmp_path / "out")
    assert code == 2 and "xy: expected coordinates from -1000000 to 1000000 pixels" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_poses_at_the_edges_of_the_range_draw_finite_images(loaded):
    """Coordinates a million pixels out, on the smallest and the largest canvas: the encoders' float32
    arithmetic holds (what the range is for)."""
    standing = parse_pose(STANDING)
    poses = []
    for canvas, far in ((1.0, MAX_COORDINATE), (MAX_CANVAS, -MAX_COORDINATE)):
        xy = standing.xy.copy()
        xy[0, :5] = far  # the head, far away; the body where it was
        poses.append(Pose(xy, standing.state, canvas, canvas))
    for model, pipeline in pipelines().items():
        pipeline.set_progress_bar_config(disable=True)
        drawing = pipeline(poses, seeds=[0, 1], **few_steps(model, {}))
        assert torch.isfinite(drawing.images).all() and torch.isfinite(drawing.vq_latents).all(), model


# --- the studio -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studio_client(tmp_path_factory):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from posedraw.studio.app import create_app

    from .studio_helpers import make_studio

    studio = make_studio(tmp_path_factory.mktemp("gallery"))
    with TestClient(create_app(studio)) as client:
        yield client
    studio.jobs.close()


json_values = st.one_of(extreme_floats, st.booleans(), st.none(), extreme_integers, texts)


def preview(client, body: dict) -> None:
    """One preview: a 4xx with a one-line error, or a PNG (a drawing with a non-finite value is an error)."""
    response = client.post("/api/preview", content=json.dumps(body), headers={"Content-Type": "application/json"})
    if response.status_code == 200:
        assert response.content.startswith(b"\x89PNG"), body
        return
    assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
    assert "\n" not in response.json()["error"], body


@settings(max_examples=12)
@given(request=requests(), odd=st.dictionaries(st.sampled_from(sorted(OPTION_VALUES)), json_values, max_size=1),
       full=st.booleans())  # fmt: skip
@pytest.mark.slow
def test_preview_with_extreme_options_is_a_4xx_or_a_png(studio_client, request, odd, full):
    model, options = request
    body = {"pose": STANDING, "model": model, "options": {**options, **odd}, "client": "fuzz", "seq": 1}
    preview(studio_client, {**body, "quality": "full" if full else "preview"})


@settings(max_examples=10)
@given(model=st.sampled_from(MODELS), pose=extreme_poses())
@pytest.mark.slow
def test_preview_with_extreme_pose_coordinates_is_a_4xx_or_a_png(studio_client, model, pose):
    preview(studio_client, {"pose": pose, "model": model, "options": few_steps(model, {}), "client": "fuzz", "seq": 1})
