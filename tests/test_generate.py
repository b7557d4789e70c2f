"""`posedraw generate` end to end on the converted fixture, and the sampling options of the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posedraw.compat.ldm import convert_ldm_checkpoint
from posedraw.errors import PosedrawError
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.pipelines.samplers import SAMPLERS
from posedraw.pose import read_pose

from .cli_helpers import run_cli


@pytest.fixture(scope="module")
def model_dir(fixtures, tmp_path_factory):
    folder = fixtures / "ldm_kp_f4_tiny"
    out = tmp_path_factory.mktemp("models") / "kp"
    convert_ldm_checkpoint(folder / "model.ckpt", folder / "config.yaml").save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pipeline(model_dir) -> KeypointLDMPipeline:
    pipe = KeypointLDMPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.slow
def test_generate_writes_pngs_with_metadata_latents_grids_and_progress_rows(
    capsys, model_dir, keypoint_files, tmp_path
):
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "generate",
        "--model",
        model_dir,
        "--pose",
        keypoint_files["1000846"],
        "--pose",
        keypoint_files["1001870"],
        "--num",
        "2",
        "--seed",
        "7",
        "--steps",
        "4",
        "--save-latent",
        "--grid",
        "--progress-row",
        "--out",
        out,
        "--device",
        "cpu",
    )
    assert code == 0, err
    names = sorted(p.name for p in out.glob("*.png") if "_" in p.stem and not p.stem.endswith(("grid", "progress")))
    assert names == ["1000846_seed7.png", "1000846_seed8.png", "1001870_seed7.png", "1001870_seed8.png"]
    images = [_pixels(out / n) for n in names]
    assert all(img.shape == (64, 64, 3) for img in images)
    assert len({img.tobytes() for img in images}) == 4  # 2 poses x 2 seeds: four distinct drawings
    info = json.loads(Image.open(out / "1001870_seed8.png").text["posedraw"])
    options = info["options"]
    assert (info["seed"], options["sampler"], options["steps"], options["eta"], options["guidance"]) == (
        8,
        "dpm++",
        4,
        0.0,
        1.0,
    )
    assert info["model"] == str(model_dir) and info["pose"]["schema"] == "posedraw.pose/1"
    latent = np.load(out / "1000846_seed7.latent.npy")
    assert latent.shape == (3, 16, 16) and np.isfinite(latent).all()
    assert Image.open(out / "1000846_seed7_grid.png").size == (128, 64)  # pose | sample
    assert Image.open(out / "1000846_seed7_progress.png").size[0] == 64 * (4 + 1)  # x0 of each step + final


@pytest.mark.slow
def test_from_png_redraws_the_same_image(capsys, model_dir, keypoint_files, tmp_path):
    code, _, err = run_cli(
        capsys,
        "generate",
        "--model",
        model_dir,
        "--pose",
        keypoint_files["1001870"],
        "--seed",
        "3",
        "--sampler",
        "ddim",
        "--steps",
        "5",
        "--eta",
        "0.5",
        "--out",
        tmp_path / "a",
    )
    assert code == 0, err
    first = tmp_path / "a" / "1001870_seed3.png"
    code, _, err = run_cli(capsys, "generate", "--from-png", first, "--out", tmp_path / "b")
    assert code == 0, err
    assert np.array_equal(_pixels(first), _pixels(tmp_path / "b" / "1001870_seed3.png"))


@pytest.mark.slow
def test_start_latents_from_a_file_fix_the_result(capsys, model_dir, keypoint_files, tmp_path):
    start = np.random.default_rng(0).standard_normal((3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "start.npy", start)
    for seed, folder in (("1", "a"), ("2", "b")):
        code, _, err = run_cli(
            capsys,
            "generate",
            "--model",
            model_dir,
            "--pose",
            keypoint_files["1000846"],
            "--seed",
            seed,
            "--steps",
            "3",
            "--latents",
            tmp_path / "start.npy",
            "--out",
            tmp_path / folder,
        )
        assert code == 0, err
    # same start latent: the seed no longer matters for a deterministic sampler
    assert np.array_equal(_pixels(tmp_path / "a" / "1000846_seed1.png"), _pixels(tmp_path / "b" / "1000846_seed2.png"))


def test_generate_errors_are_one_line_exit_2(capsys, model_dir, keypoint_files, tmp_path):
    (tmp_path / "empty_pose.json").write_text(
        '{"schema": "posedraw.pose/1", "canvas": {"width": 64, "height": 64}, "people": [{"joints": {}}]}'
    )
    np.save(tmp_path / "wrong.npy", np.zeros((4, 16, 16), np.float32))
    pose = keypoint_files["1000846"]
    cases = [
        (["--model", tmp_path / "nope", "--pose", pose], "expected a model folder with model_index.json"),
        (["--model", model_dir, "--pose", tmp_path / "empty_pose.json"], "expected at least one joint with a position"),
        (
            ["--model", model_dir, "--pose", pose, "--latents", tmp_path / "wrong.npy"],
            "expected a latent of shape (3, 16, 16)",
        ),
        (["--model", model_dir, "--pose", pose, "--guidance", "2"], "without a null pose"),
        (["--model", model_dir, "--pose", pose, "--sampler", "heun"], "--sampler: expected one of"),
        (["--model", model_dir, "--pose", pose, "--eta", "0.3"], "only the ddim sampler has an eta"),
        (["--model", model_dir], "no poses"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(capsys, "generate", *argv, "--steps", "2", "--out", tmp_path / "out")
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    assert not list((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True


@pytest.mark.parametrize("sampler", [s if s == "ddim" else pytest.param(s, marks=pytest.mark.slow) for s in SAMPLERS])
def test_every_sampler_is_deterministic_per_seed_and_independent_of_batching(pipeline, keypoint_files, sampler):
    poses = [read_pose(keypoint_files["1000846"]), read_pose(keypoint_files["1001870"])]
    eta = 0.5 if sampler == "ddim" else 0.0
    together = pipeline(poses, seeds=[5, 6], sampler=sampler, steps=3, eta=eta).images
    alone = pipeline(poses[1:], seeds=[6], sampler=sampler, steps=3, eta=eta).images
    assert torch.isfinite(together).all()
    assert torch.allclose(together[1], alone[0], atol=1e-4)
    assert not torch.allclose(together[0], together[1])


@pytest.mark.slow
def test_intermediates_are_x0_predictions_every_k_steps(pipeline, keypoint_files):
    out = pipeline([read_pose(keypoint_files["1000846"])], seeds=[0], sampler="ddim", steps=6, x0_every=2)
    assert [step for step, _ in out.intermediates] == [0, 2, 4, 5]
    # DDIM with eta 0: the last step moves only by the smallest noise level, which quantization absorbs
    assert torch.allclose(out.intermediates[-1][1], out.images, atol=1e-4)


def test_seed_and_latent_count_must_match(pipeline, keypoint_files):
    pose = read_pose(keypoint_files["1000846"])
    with pytest.raises(PosedrawError, match="one per pose"):
        pipeline([pose, pose], seeds=[1])


def test_several_people_are_refused_by_a_one_person_model_not_dropped(capsys, model_dir, keypoint_files, tmp_path):
    """The original checkpoints draw one person: a file with three is an error naming the file, not its first
    person drawn silently; --frame picks a frame of a ComfyUI list (here the one-person frame)."""
    one = read_pose(keypoint_files["1000846"])
    from posedraw.pose import Pose, dump_pose

    shift = np.array([40.0, 0.0])
    three = Pose.stack([one, one.replace(xy=one.xy + shift), one.replace(xy=one.xy - shift)])
    (tmp_path / "three.json").write_text(json.dumps(dump_pose(three)))
    code, _, err = run_cli(capsys, "generate", "--model", model_dir, "--pose", tmp_path / "three.json",
                           "--steps", "2", "--out", tmp_path / "out")  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert "three.json" in err and "draws one person, the pose has 3" in err
    assert not (tmp_path / "out").exists()
    frames = [dump_pose(three, "openpose"), dump_pose(one, "openpose")]
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    code, _, err = run_cli(capsys, "generate", "--model", model_dir, "--pose", tmp_path / "frames.json",
                           "--frame", "1", "--steps", "2", "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "out" / "frames_seed0.png").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sampler": "dpm++", "eta": 0.5}, "--eta: only the ddim sampler has an eta"),
        ({"sampler": "euler", "eta": 0.5}, "--eta: only the ddim sampler has an eta"),
        ({"sampler": "ddim", "steps": 1000}, "--steps: at most 999 for this sampler"),
        ({"sampler": "plms", "steps": 1000}, "--steps: at most 999 for this sampler"),
        ({"steps": 1001}, "--steps: expected an integer from 1 to 1000"),
        ({"steps": 2.0}, "--steps: expected an integer"),
        ({"guidance": 2.0}, "--guidance: the legacy pose encoder was trained without a null pose"),
        ({"guidance": None}, "--guidance: expected a number from 0 to 30"),
        ({"eta": True, "sampler": "ddim"}, "--eta: expected a number from 0 to 1"),
        ({"eta": float("nan"), "sampler": "ddim"}, "--eta: expected a number from 0 to 1"),
        ({"latents": torch.zeros(1, 4, 16, 16)}, "latents: expected shape (N, 3, 16, 16)"),
        ({"latents": torch.full((1, 3, 16, 16), float("inf"))}, "latents: expected finite numbers"),
    ],
)
def test_check_options_refuses_combinations_and_the_call_refuses_them_before_any_work(
    pipeline, keypoint_files, options, message
):
    """One check for the CLI, the studio and the call itself: nothing reaches the UNet."""
    with pytest.raises(PosedrawError) as refused:
        pipeline.check_options(options)
    assert str(refused.value).startswith(message)
    calls = []
    hook = pipeline.unet.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(PosedrawError, match=message.replace("(", r"\(").replace(")", r"\)")):
            pipeline([read_pose(keypoint_files["1000846"])], seeds=[0], **{"steps": 2, **options})
    finally:
        hook.remove()
    assert not calls


def test_the_longest_grid_of_each_sampler_is_accepted(pipeline):
    for sampler in SAMPLERS:
        steps = 999 if sampler in ("ddim", "plms") else 1000
        pipeline.check_options({"sampler": sampler, "steps": steps})


@pytest.mark.slow  # compiles the transformer's step with inductor
def test_generate_compile_draws_what_the_eager_model_draws(capsys, tmp_path, monkeypatch):
    """`--compile` reaches the pipeline and draws through the compiled step: the same codes, so the same PNG."""
    compiled_calls = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda *a, **k: compiled_calls.append(k) or real_compile(*a, **k))
    pose = str(Path(__file__).parents[1] / "examples" / "poses" / "waving.json")
    common = ["generate", "--model", "builtin:transformer", "--pose", pose, "--seed", "3", "--device", "cpu"]
    assert run_cli(capsys, *common, "--out", str(tmp_path / "eager"))[0] == 0
    assert not compiled_calls
    code, _, err = run_cli(capsys, *common, "--compile", "--out", str(tmp_path / "compiled"))
    assert code == 0, err
    assert compiled_calls  # the compiled step drew the codes
    png = "waving_seed3.png"
    assert np.array_equal(_pixels(tmp_path / "eager" / png), _pixels(tmp_path / "compiled" / png))
