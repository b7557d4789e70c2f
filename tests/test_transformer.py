"""The pose-conditioned code transformer: pose prefix, KV-cached sampling, training, and generate/tune on it.

Codes come from toy figures encoded by the built-in model's VQ (64 px, f4: a 16 x 16 grid of 256 codes,
the sequence length of the f16 model at 256 px).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from posedraw.builtin import builtin_model
from posedraw.config import to_dict
from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.latents import cache_dataset, read_cache
from posedraw.data.toy import ToyMaker, make_toy_sample
from posedraw.errors import ConfigError, PosedrawError
from posedraw.models.code_conditioning import PREFIX, input_embeddings
from posedraw.models.incremental_gpt2 import IncrementalGPT2
from posedraw.models.transformer import CodeSampler, Sampling, TransformerConfig, build_transformer, filter_logits
from posedraw.models.transformer import pose_encoder_for as encoder_for
from posedraw.models.vq import load_vq
from posedraw.pipelines import CodeTransformerPipeline, load_pipeline
from posedraw.pose import JOINTS, dump_pose
from posedraw.train.driver import RunOptions
from posedraw.train.transformer import decay_groups, held_out_loss, train_transformer
from tests.cli_helpers import run_cli

TINY = TransformerConfig(num_codes=64, grid=6, pose_grid=8, layers=2, heads=2, width=32, pose_maps=True)
PREFIX_ONLY = TransformerConfig(num_codes=64, grid=6, pose_grid=8, layers=2, heads=2, width=32)


def _sampler(config: TransformerConfig = TINY) -> CodeSampler:
    torch.manual_seed(0)
    return CodeSampler(build_transformer(config), encoder_for(config, null_pose=True))


def _config(tmp_path, name="t.yaml", **train):
    config = {
        "model": {"pose_grid": 16, "layers": 2, "heads": 2, "width": 64, "pose_maps": True},
        "train": {"batch_size": 16, "learning_rate": 3e-3, "warmup_steps": 20, "max_steps": 600, "pose_dropout": 0.1,
                  "checkpoint_every": 50, "num_workers": 0, **train},
    }  # fmt: skip
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    """A code cache of 256 toy figures (for short training runs) and 64 held-out figures."""
    root = tmp_path_factory.mktemp("codes")
    vq = load_vq(builtin_model())
    build_dataset(root / "toy", ShardPlan(list(range(256)), 64), ToyMaker(64), 64, progress=False)
    cache_dataset(root / "toy", vq, root / "cache", latents=False, batch_size=32, progress=False)
    build_dataset(root / "held", ShardPlan(list(range(10**6, 10**6 + 64)), 64), ToyMaker(64), 64, progress=False)
    cache_dataset(root / "held", vq, root / "held-cache", latents=False, batch_size=32, progress=False)
    held = read_cache(root / "held-cache", "codes")
    return root, torch.stack([s["codes"] for s in held]), [s["pose"] for s in held]


def test_pose_prefix_uses_its_own_vocabulary_and_marks_absent_joints():
    encoder = encoder_for(TINY, null_pose=True)
    pose = make_toy_sample(5, 64).pose
    tokens = encoder.prefix([pose])[0]
    assert tokens.shape == (17,) and (tokens >= TINY.num_codes).all() and (tokens < TINY.null_token).all()
    xy = pose.xy.copy()
    xy[0, 9] = [1.0, 1.0]  # left wrist to the top-left cell
    state = pose.state.copy()
    state[0, 10] = 0  # right wrist absent
    moved = encoder.prefix([type(pose)(xy, state, pose.width, pose.height)])[0]
    changed = torch.nonzero(moved != tokens).flatten().tolist()
    assert changed == [9, 10] or changed == [10]  # only the edited joints
    assert moved[9] == TINY.num_codes and moved[10] == TINY.absent_token


def test_pose_maps_mark_the_code_cells_of_each_joint_and_go_where_that_code_is_predicted():
    encoder = encoder_for(TINY, null_pose=True)
    pose = make_toy_sample(5, 64).pose
    maps = encoder.maps([pose])[0]  # (36 cells, 33)
    nose = JOINTS.index("nose")
    x, y = pose.xy[0, nose] / 64 * TINY.grid
    assert int(maps[:, nose].argmax()) == int(y) * TINY.grid + int(x)
    model = build_transformer(TINY)
    ids = torch.randint(0, TINY.num_codes, (1, PREFIX + 5))
    marked = torch.zeros(1, TINY.grid**2, TINY.width)
    marked[0, 3] = 1.0  # the vector for code 3 ...
    added = input_embeddings(model, ids, marked) - model.transformer.wte(ids)
    assert added[0].abs().sum(-1).nonzero().flatten().tolist() == [PREFIX - 1 + 3]  # ... at the position predicting it


def test_top_k_and_top_p_keep_the_likeliest_entries():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    assert torch.isfinite(filter_logits(logits, Sampling(top_k=2))).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, Sampling(top_p=0.7))).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, Sampling(top_p=0.5))).tolist() == [[True, False, False, False]]
    # a mass too small for float32 (1e-308 rounds to 0) still keeps the likeliest code instead of none
    assert torch.isfinite(filter_logits(logits, Sampling(top_p=1e-308))).tolist() == [[True, False, False, False]]


@pytest.mark.parametrize("config", [TINY, PREFIX_ONLY], ids=["maps", "prefix-only"])
@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.7, top_k=8, top_p=0.9, guidance=2.0)])
def test_kv_cached_sampling_draws_the_same_codes_as_recomputing(sampling, config):
    sampler = _sampler(config)
    poses = [make_toy_sample(i, 64).pose for i in range(3)]
    cached, _ = sampler(poses, [4, 5, 6], sampling)
    assert torch.equal(cached, sampler(poses, [4, 5, 6], sampling, use_cache=False)[0])
    assert cached.shape == (3, 6, 6) and cached.max() < TINY.num_codes


@pytest.mark.parametrize("autocast", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_incremental_step_gives_the_full_forward_logits_at_every_position(autocast):
    """With vectors added to the inputs (the pose maps), and under bf16 autocast as on a GPU."""
    torch.manual_seed(0)
    model = build_transformer(TINY).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)  # far from the near-uniform logits of a fresh init
        ids = torch.randint(0, TINY.null_token + 1, (2, TINY.num_positions))
        added = torch.randn(2, TINY.num_positions, TINY.width)
        with torch.autocast("cpu", dtype=autocast or torch.float32, enabled=autocast is not None):
            full = model(inputs_embeds=model.transformer.wte(ids) + added).logits[..., : TINY.num_codes].float()
            decoder = IncrementalGPT2(model, TINY.num_positions, TINY.num_codes)
            steps = [decoder.logits(ids[:, :17], added[:, :17])]
            steps += [decoder.logits(ids[:, i : i + 1], added[:, i : i + 1]) for i in range(17, ids.shape[1])]
    assert full.std() > 1  # logits that differ enough for a wrong position or cache to show
    tolerance = 1e-4 if autocast is None else 0.1 * float(full.std())  # bf16 keeps 8 bits of mantissa
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 16:], atol=tolerance, rtol=1e-2 if autocast else 1e-4)
    with pytest.raises(ValueError, match="positions"):
        decoder.logits(ids[:, :1])


def test_incremental_step_refuses_gpt2_variants_it_does_not_implement():
    model = build_transformer(TINY)
    model.config.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(ConfigError, match="scale_attn_by_inverse_layer_idx"):
        IncrementalGPT2(model, TINY.num_positions, TINY.num_codes)


def test_sampling_is_deterministic_per_seed_in_any_batch():
    sampler = _sampler()
    poses = [make_toy_sample(i, 64).pose for i in range(3)]
    together, _ = sampler(poses, [4, 5, 6])
    assert torch.equal(together[1:2], sampler(poses[1:2], [5])[0])
    assert not torch.equal(together[1:2], sampler(poses[1:2], [7])[0])


def test_weight_decay_spares_biases_norms_and_embeddings():
    model = build_transformer(TINY)
    decay, no_decay = (set(map(id, g["params"])) for g in decay_groups(model, 0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[i].endswith(("attn.weight", "proj.weight", "fc.weight")) for i in decay)
    assert any(names[i].endswith("wte.weight") for i in no_decay) and any("ln_" in names[i] for i in no_decay)


def test_pose_lowers_held_out_cross_entropy_of_the_builtin_transformer(codes):
    """The shipped model (trained with pose dropout 0.1): held-out figures' codes are likelier given their
    poses than given the null pose."""
    _, held_codes, held_poses = codes
    pipeline = load_pipeline("builtin:transformer")
    losses = {with_pose: held_out_loss(pipeline, held_codes, held_poses, with_pose) for with_pose in (True, False)}
    assert losses[True] < losses[False] - 0.3, losses  # measured 1.932 vs 2.570 nats (2026-11-26)


def test_config_that_disagrees_with_the_cache_is_refused(codes, tmp_path):
    root, _, _ = codes
    config = yaml.safe_load(_config(tmp_path).read_text())
    config["model"]["num_codes"] = 1024
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"model\.num_codes"):
        train_transformer(tmp_path / "bad.yaml", root / "cache", builtin_model(), RunOptions(tmp_path / "o"))


def test_train_resume_generate_and_tune_through_the_cli(codes, tmp_path, capsys):
    root, _, _ = codes
    config, out = _config(tmp_path, max_steps=10), tmp_path / "run"
    args = ["train", "transformer", "--config", config, "--codes", root / "cache", "--vq", builtin_model(),
            "--out", out, "--device", "cpu"]  # fmt: skip
    assert run_cli(capsys, *args)[0] == 0
    code, _, err = run_cli(capsys, *args, "--max-steps", "15")
    assert code == 0, err
    assert json.loads((out / "model" / "posedraw.json").read_text())["steps"] == 15  # resumed at 10, not restarted
    (tmp_path / "p.json").write_text(json.dumps(dump_pose(make_toy_sample(1, 64).pose)))
    gen = ["generate", "--model", out / "model", "--pose", tmp_path / "p.json", "--num", "2", "--top-k", "20",
           "--temperature", "0.9", "--save-latent", "--progress-row", "--out", tmp_path / "g"]  # fmt: skip
    code, _, err = run_cli(capsys, *gen)
    assert code == 0, err
    image = Image.open(tmp_path / "g" / "p_seed1.png")
    recipe = json.loads(image.text["posedraw"])["options"]
    assert image.size == (64, 64) and recipe["top_k"] == 20 and recipe["temperature"] == 0.9
    grid = np.load(tmp_path / "g" / "p_seed1.codes.npy")
    assert grid.shape == (16, 16) and np.issubdtype(grid.dtype, np.integer)
    assert Image.open(tmp_path / "g" / "p_seed1_progress.png").size == (9 * 64, 64)  # 8 partial grids + the image
    redo = ["generate", "--from-png", tmp_path / "g" / "p_seed1.png", "--save-latent", "--out", tmp_path / "re"]
    code, _, err = run_cli(capsys, *redo)
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "re" / "p_seed1.codes.npy"), grid)  # the same codes, drawn alone
    again = np.asarray(Image.open(tmp_path / "re" / "p_seed1.png"), dtype=np.int16)
    assert np.abs(again - np.asarray(image, dtype=np.int16)).max() <= 1  # decoded in a batch of 1, not 2
    tune = ["tune", tmp_path / "g" / "p_seed1.codes.npy", "--model", out / "model", "--prompt", "colorful",
            "--clip", "posedraw-tiny-clip", "--steps", "2", "--cutouts", "2", "--out", tmp_path / "t"]  # fmt: skip
    code, _, err = run_cli(capsys, *tune)
    assert code == 0, err
    assert (tmp_path / "t" / "p_seed1_tuned.png").is_file()
    assert json.loads(Image.open(tmp_path / "t" / "p_seed1_tuned.png").text["posedraw"])["seed"] == 1


@pytest.mark.parametrize(
    ("model", "option", "flag"),
    [("builtin:transformer", ["--sampler", "ddim"], "--sampler"), ("builtin:transformer", ["--steps", "3"], "--steps"),
     ("builtin", ["--top-p", "0.5"], "--top-p"), ("builtin:transformer", ["--top-p", "2"], "--top-p"),
     ("builtin", ["--guidance", "-3"], "--guidance")],
)  # fmt: skip
def test_options_the_model_does_not_take_are_refused_by_name(capsys, tmp_path, model, option, flag):
    (tmp_path / "p.json").write_text(json.dumps(dump_pose(make_toy_sample(1, 64).pose)))
    code, _, err = run_cli(capsys, "generate", "--model", model, "--pose", tmp_path / "p.json", *option,
                           "--out", tmp_path / "out")  # fmt: skip
    assert code == 2 and err.startswith(f"error: {flag}: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_both_generators_save_load_and_answer_the_same_call(tmp_path):
    vq = load_vq(builtin_model())
    torch.manual_seed(0)
    config = replace(TINY, num_codes=vq.config.num_vq_embeddings, grid=16)
    pipeline = CodeTransformerPipeline(build_transformer(config).eval(), vq, encoder_for(config, null_pose=True))
    pipeline.set_progress_bar_config(disable=True)
    pose = make_toy_sample(3, 64).pose
    drawn = pipeline([pose], seeds=[7], guidance=2.0, top_k=10)
    pipeline.save_pretrained(tmp_path / "tf")
    assert json.loads((tmp_path / "tf" / "model_index.json").read_text())["_class_name"] == "CodeTransformerPipeline"
    again = load_pipeline(tmp_path / "tf")
    again.set_progress_bar_config(disable=True)
    assert isinstance(again, CodeTransformerPipeline)
    assert torch.equal(again([pose], seeds=[7], guidance=2.0, top_k=10).codes, drawn.codes)
    diffusion = load_pipeline("builtin")
    diffusion.set_progress_bar_config(disable=True)
    for result in (drawn, diffusion([pose], seeds=[7], steps=2)):  # one output type
        assert result.images.shape == (1, 3, 64, 64) and result.vq_latents.shape == (1, 3, 16, 16)
    assert drawn.codes.shape == (1, 16, 16) and drawn.latents is None


def test_a_transformer_folder_of_an_earlier_version_still_generates(capsys, tmp_path):
    """Folders written before transformers were pipelines: vq/, transformer/, posedraw.json, no model index."""
    vq = load_vq(builtin_model())
    config = replace(PREFIX_ONLY, num_codes=vq.config.num_vq_embeddings, grid=16)
    folder = tmp_path / "old"
    vq.save_pretrained(folder / "vq")
    build_transformer(config).save_pretrained(folder / "transformer")
    info = {"kind": "transformer", "steps": 1, "config": {"model": to_dict(config), "train": {"pose_dropout": 0.1}}}
    (folder / "posedraw.json").write_text(json.dumps(info))
    (tmp_path / "p.json").write_text(json.dumps(dump_pose(make_toy_sample(1, 64).pose)))
    code, _, err = run_cli(capsys, "generate", "--model", folder, "--pose", tmp_path / "p.json", "--guidance", "2",
                           "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, err
    assert "note: " in err and "earlier posedraw version" in err
    assert (tmp_path / "out" / "p_seed0.png").is_file()


def test_guidance_is_refused_for_a_model_trained_without_the_null_pose():
    vq = load_vq(builtin_model())
    config = replace(TINY, num_codes=vq.config.num_vq_embeddings, grid=16)
    pipeline = CodeTransformerPipeline(build_transformer(config), vq, encoder_for(config, null_pose=False))
    with pytest.raises(PosedrawError, match="--guidance"):
        pipeline([make_toy_sample(0, 64).pose], seeds=[0], guidance=2.0)
