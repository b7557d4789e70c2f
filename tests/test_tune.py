"""CLIP-guided tuning on the built-in toy VQ (f4) with the tiny untrained CLIP: no download anywhere.

The tiny CLIP's verdicts mean nothing semantically, but its gradients are real, which is all these tests
need: the loss must fall, the latent must stay in the codebook box, and the structure term must keep the
figure where the toy pose detector finds its pose.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from posedraw.builtin import builtin_model
from posedraw.data.images import to_tensor
from posedraw.data.toy import make_toy_sample
from posedraw.errors import PosedrawError
from posedraw.eval.fidelity import detect, fidelity, in_image_frame
from posedraw.models.clip import TINY, ClipSpec, load_clip
from posedraw.models.vq import codebook_range, decode_codes, encode, latents_from_codes, load_vq, quantize
from posedraw.pose import dump_pose
from posedraw.tuning import TuneOptions, embed_prompts, parse_prompt, similarities, tune
from posedraw.tuning.clip import spherical_distance
from posedraw.tuning.files import read_tune_record
from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def vq():
    return load_vq(builtin_model())


@pytest.fixture(scope="module")
def clip():
    return load_clip(ClipSpec(TINY, None))


@pytest.fixture(scope="module")
def figures():
    samples = [make_toy_sample(10**9 + i, 64) for i in range(6)]
    return torch.stack([to_tensor(s.image) for s in samples]), [s.pose for s in samples]


def _tune(vq, clip, latents, prompts, **options):
    parsed = [parse_prompt(p) for p in prompts]
    weights = torch.tensor([p.weight for p in parsed])
    return tune(vq, clip, latents, embed_prompts(clip, parsed), weights, TuneOptions(**options))


def _pck(images, poses) -> float:
    return fidelity(detect(images, "toy"), [in_image_frame(p, 64, 64) for p in poses]).pck


@pytest.mark.parametrize(
    ("spec", "text", "weight"),
    [("colorful", "colorful", 1.0), ("monochrome:-0.5", "monochrome", -0.5), ("style: anime", "style: anime", 1.0),
     ("a:b:2", "a:b", 2.0), ("  red hair :3 ", "red hair", 3.0)],
)  # fmt: skip
def test_prompts_parse_text_and_weight(spec, text, weight):
    prompt = parse_prompt(spec)
    assert (prompt.text, prompt.weight, prompt.image) == (text, weight, None)


@pytest.mark.parametrize("spec", [":2", "", "x:0", "x:nan", "x:inf"])
def test_bad_prompts_are_rejected_by_name(spec):
    with pytest.raises(PosedrawError, match="prompt"):
        parse_prompt(spec)


def test_image_prompt_keeps_colons_of_the_path():
    prompt = parse_prompt("refs/a:b.png:-1", image=True)
    assert str(prompt.image) == "refs/a:b.png" and prompt.weight == -1 and prompt.text is None


def test_spherical_distance_matches_the_great_circle_formula():
    a = torch.tensor([1.0, 0.0])
    assert float(spherical_distance(a, a)) == 0.0
    assert float(spherical_distance(a, torch.tensor([0.0, 1.0]))) == pytest.approx(math.pi**2 / 8)
    assert float(spherical_distance(a, -a)) == pytest.approx(math.pi**2 / 2)


@pytest.mark.slow
def test_clip_loss_falls_and_latent_stays_in_the_codebook_box(vq, clip, figures):
    images, _ = figures
    with torch.no_grad():
        latents = encode(vq, images[:3])
    result = _tune(vq, clip, latents, ["colorful"], steps=30, lr=0.5, cutouts=4, keep_pose=0.0)
    losses = result.clip_losses
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.01
    low, high = (v.view(1, -1, 1, 1) for v in codebook_range(vq))
    assert (result.latents >= low - 1e-6).all() and (result.latents <= high + 1e-6).all()
    assert (
        torch.isclose(result.latents, low.expand_as(result.latents)).any()
        or torch.isclose(result.latents, high.expand_as(result.latents)).any()
    )  # lr 0.5 pushes some values to the box: the clamp was needed
    assert torch.equal(result.codes, quantize(vq, result.latents)[1])


@pytest.mark.slow
def test_structure_term_keeps_the_pose_and_without_it_the_image_drifts(vq, clip, figures):
    images, poses = figures
    with torch.no_grad():
        latents = encode(vq, images)
    start = _pck(decode_codes(vq, quantize(vq, latents)[1]), poses)
    kept = _tune(vq, clip, latents, ["colorful"], steps=25, lr=0.2, cutouts=4, anchor=0.0, keep_pose=10.0)
    free = _tune(vq, clip, latents, ["colorful"], steps=25, lr=0.2, cutouts=4, anchor=0.0, keep_pose=0.0)
    pck_kept, pck_free = _pck(kept.images, poses), _pck(free.images, poses)
    assert start > 0.7  # the VQ reconstructs figures the detector can read
    assert pck_kept > 0.6 and pck_kept > pck_free + 0.2
    assert (kept.images - images).abs().mean() < (free.images - images).abs().mean()


@pytest.mark.slow
def test_positive_prompts_attract_and_negative_prompts_repel(vq, clip, figures):
    images, _ = figures
    with torch.no_grad():
        latents = encode(vq, images[:2])
    embedding = embed_prompts(clip, [parse_prompt("colorful")])
    before = similarities(clip, decode_codes(vq, quantize(vq, latents)[1]), embedding)
    toward = _tune(vq, clip, latents, ["colorful"], steps=20, lr=0.3, cutouts=4, keep_pose=0.0, anchor=0.0)
    away = _tune(vq, clip, latents, ["colorful:-1"], steps=20, lr=0.3, cutouts=4, keep_pose=0.0, anchor=0.0)
    assert (similarities(clip, toward.images, embedding) > before).all()
    assert (similarities(clip, away.images, embedding) < before).all()


@pytest.mark.slow
def test_tuning_is_deterministic_for_a_seed(vq, clip, figures):
    with torch.no_grad():
        latents = encode(vq, figures[0][:1])
    a, b = (_tune(vq, clip, latents, ["colorful"], steps=4, cutouts=3, seed=7) for _ in range(2))
    c = _tune(vq, clip, latents, ["colorful"], steps=4, cutouts=3, seed=8)
    assert torch.equal(a.latents, b.latents) and not torch.equal(a.latents, c.latents)


def test_code_grid_input_is_the_latent_of_those_codes(vq, figures):
    with torch.no_grad():
        codes = quantize(vq, encode(vq, figures[0][:1]))[1]
        latent = latents_from_codes(vq, codes)
        assert torch.equal(quantize(vq, latent)[1], codes)
        assert torch.allclose(decode_codes(vq, codes), vq.decode(latent).sample, atol=1e-5)


@pytest.mark.slow
def test_tune_command_writes_png_metadata_strip_and_reports_similarity(capsys, tmp_path, figures):
    Image.fromarray(((figures[0][0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(tmp_path / "in.png")
    args = ["tune", tmp_path / "in.png", "--out", tmp_path / "out", "--clip", TINY, "--prompt", "colorful",
            "--prompt", "dark:-0.5", "--steps", "4", "--cutouts", "2", "--every", "2", "--device", "cpu"]  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "colorful" in out and "CLIP after" in out
    record = read_tune_record(tmp_path / "out" / "in_tuned.png")
    assert [r["prompt"] for r in record["prompts"]] == ["colorful", "dark"] and record["options"]["steps"] == 4
    assert Image.open(tmp_path / "out" / "in_tune_strip.png").size == (64 * 3, 64)  # steps 0, 2 and the result
    assert np.load(tmp_path / "out" / "in_tuned.latent.npy").shape == (3, 16, 16)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--prompt", "x:0"], "weight of 0"), ([], "no prompts"), (["--prompt", "a", "--clip-weights", "no.pt"], "no.pt"),
     (["--prompt", "a", "--structure", "blur"], "--structure")],
)  # fmt: skip
def test_tune_command_rejects_bad_input_without_writing(capsys, tmp_path, figures, extra, message):
    Image.new("RGB", (64, 64)).save(tmp_path / "in.png")
    code, _, err = run_cli(capsys, "tune", tmp_path / "in.png", "--out", tmp_path / "out", "--clip", TINY, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_generate_then_tune_in_one_command(capsys, tmp_path):
    """The drawing's latent goes to tuning in memory: no .latent.npy of the drawing unless --save-latent asks
    for one, and the tuned result is the one `posedraw tune` makes from that saved latent."""
    pose = make_toy_sample(3, 64).pose
    (tmp_path / "p.json").write_text(json.dumps(dump_pose(pose)))
    draw = ["generate", "--pose", tmp_path / "p.json", "--steps", "4", "--device", "cpu"]
    tuning = ["--clip", TINY, "--device", "cpu"]
    code, _, err = run_cli(capsys, *draw, "--out", tmp_path / "g", "--tune-prompt", "colorful", "--tune-steps", "3",
                           *tuning)  # fmt: skip
    assert code == 0, err
    tuned = tmp_path / "g" / "p_seed0_tuned.png"
    assert json.loads(Image.open(tuned).text["posedraw"])["seed"] == 0  # the recipe travels with the image
    assert read_tune_record(tuned)["options"]["steps"] == 3
    assert sorted(p.name for p in (tmp_path / "g").glob("*.npy")) == ["p_seed0_tuned.latent.npy"]
    code, _, err = run_cli(capsys, *draw, "--out", tmp_path / "saved", "--save-latent")
    assert code == 0, err
    code, _, err = run_cli(capsys, "tune", tmp_path / "saved" / "p_seed0.latent.npy", "--prompt", "colorful",
                           "--steps", "3", "--out", tmp_path / "t", *tuning)  # fmt: skip
    assert code == 0, err
    in_memory, from_file = (np.load(d / "p_seed0_tuned.latent.npy") for d in (tmp_path / "g", tmp_path / "t"))
    np.testing.assert_array_equal(in_memory, from_file)
