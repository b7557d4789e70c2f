"""The pose-conditioned code transformer: pose prefix, KV-cached sampling, training, and generate/tune on it.

Codes come from toy figures encoded by the built-in model's VQ (64 px, f4: a 16 x 16 grid of 256 codes,
the sequence length of the f16 model at 256 px).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from posedraw.builtin import builtin_model
from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.latents import cache_dataset, read_cache
from posedraw.data.toy import ToyMaker, make_toy_sample
from posedraw.errors import ConfigError, PosedrawError
from posedraw.models.decoding import IncrementalGPT2
from posedraw.models.transformer import (
    CodeSampler,
    Sampling,
    TransformerConfig,
    build_transformer,
    filter_logits,
    pose_tokens,
)
from posedraw.models.vq import load_vq
from posedraw.pipelines.code_transformer import load_code_pipeline
from posedraw.pose import dump_pose
from posedraw.train.driver import RunOptions
from posedraw.train.transformer import decay_groups, held_out_loss, train_transformer
from tests.cli_helpers import run_cli

TINY = TransformerConfig(num_codes=64, grid=6, pose_grid=8, layers=2, heads=2, width=32)


def _config(tmp_path, name="t.yaml", **train):
    config = {
        "model": {"pose_grid": 16, "layers": 2, "heads": 2, "width": 64},
        "train": {"batch_size": 16, "learning_rate": 3e-3, "warmup_steps": 20, "max_steps": 600, "pose_dropout": 0.1,
                  "checkpoint_every": 50, "num_workers": 0, **train},
    }  # fmt: skip
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    """A code cache of 2000 toy figures (train: fewer overfit within 600 steps) and 64 held-out figures."""
    root = tmp_path_factory.mktemp("codes")
    vq = load_vq(builtin_model())
    build_dataset(root / "toy", ShardPlan(list(range(2000)), 250), ToyMaker(64), 64, progress=False)
    cache_dataset(root / "toy", vq, root / "cache", latents=False, batch_size=32, progress=False)
    build_dataset(root / "held", ShardPlan(list(range(10**6, 10**6 + 64)), 64), ToyMaker(64), 64, progress=False)
    cache_dataset(root / "held", vq, root / "held-cache", latents=False, batch_size=32, progress=False)
    held = read_cache(root / "held-cache", "codes")
    return root, torch.stack([s["codes"] for s in held]), [s["pose"] for s in held]


def test_pose_prefix_uses_its_own_vocabulary_and_marks_absent_joints():
    pose = make_toy_sample(5, 64).pose
    tokens = pose_tokens([pose], TINY)[0]
    assert tokens.shape == (17,) and (tokens >= TINY.num_codes).all() and (tokens < TINY.null_token).all()
    xy = pose.xy.copy()
    xy[0, 9] = [1.0, 1.0]  # left wrist to the top-left cell
    state = pose.state.copy()
    state[0, 10] = 0  # right wrist absent
    moved = pose_tokens([type(pose)(xy, state, pose.width, pose.height)], TINY)[0]
    changed = torch.nonzero(moved != tokens).flatten().tolist()
    assert changed == [9, 10] or changed == [10]  # only the edited joints
    assert moved[9] == TINY.num_codes and moved[10] == TINY.absent_token


def test_top_k_and_top_p_keep_the_likeliest_entries():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    assert torch.isfinite(filter_logits(logits, Sampling(top_k=2))).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, Sampling(top_p=0.7))).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, Sampling(top_p=0.5))).tolist() == [[True, False, False, False]]
    with pytest.raises(PosedrawError, match="--top-p"):
        Sampling(top_p=1.5).check()


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.7, top_k=8, top_p=0.9, guidance=2.0)])
def test_kv_cached_sampling_draws_the_same_codes_as_recomputing(sampling):
    torch.manual_seed(0)
    sampler = CodeSampler(build_transformer(TINY), TINY)
    poses = [make_toy_sample(i, 64).pose for i in range(3)]
    cached = sampler(poses, [4, 5, 6], sampling)
    assert torch.equal(cached, sampler(poses, [4, 5, 6], sampling, use_cache=False))
    assert cached.shape == (3, 6, 6) and cached.max() < TINY.num_codes


def test_incremental_step_gives_the_full_forward_logits_at_every_position():
    torch.manual_seed(0)
    model = build_transformer(TINY).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)  # far from the near-uniform logits of a fresh init
        ids = torch.randint(0, TINY.null_token + 1, (2, TINY.num_positions))
        full = model(input_ids=ids).logits[..., : TINY.num_codes]
        decoder = IncrementalGPT2(model, TINY.num_positions, TINY.num_codes)
        steps = [decoder.logits(ids[:, :17])] + [decoder.logits(ids[:, i : i + 1]) for i in range(17, ids.shape[1])]
    assert full.std() > 1  # logits that differ enough for a wrong position or cache to show
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 16:], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="positions"):
        decoder.logits(ids[:, :1])


def test_incremental_step_refuses_gpt2_variants_it_does_not_implement():
    model = build_transformer(TINY)
    model.config.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(ConfigError, match="scale_attn_by_inverse_layer_idx"):
        IncrementalGPT2(model, TINY.num_positions, TINY.num_codes)


def test_sampling_is_deterministic_per_seed_in_any_batch():
    torch.manual_seed(0)
    sampler = CodeSampler(build_transformer(TINY), TINY)
    poses = [make_toy_sample(i, 64).pose for i in range(3)]
    together = sampler(poses, [4, 5, 6])
    assert torch.equal(together[1:2], sampler(poses[1:2], [5]))
    assert not torch.equal(together[1:2], sampler(poses[1:2], [7]))


def test_weight_decay_spares_biases_norms_and_embeddings():
    model = build_transformer(TINY)
    decay, no_decay = (set(map(id, g["params"])) for g in decay_groups(model, 0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[i].endswith(("attn.weight", "proj.weight", "fc.weight")) for i in decay)
    assert any(names[i].endswith("wte.weight") for i in no_decay) and any("ln_" in names[i] for i in no_decay)


def test_pose_lowers_held_out_cross_entropy(codes, tmp_path):
    """One model trained with and without the pose (dropout 0.5): its held-out codes are likelier given their
    poses than given the null pose."""
    root, held_codes, held_poses = codes
    out = tmp_path / "run"
    config = _config(tmp_path, pose_dropout=0.5)
    train_transformer(config, root / "cache", builtin_model(), RunOptions(out, "cpu", progress=False))
    pipeline = load_code_pipeline(out / "model")
    losses = {with_pose: held_out_loss(pipeline.model, pipeline.config, held_codes, held_poses, with_pose=with_pose)
              for with_pose in (True, False)}  # fmt: skip
    assert losses[True] < losses[False] - 0.01, losses  # measured 2.638 vs 2.660 nats (2026-11-26)


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
           "--temperature", "0.9", "--save-latent", "--out", tmp_path / "g", "--device", "cpu"]  # fmt: skip
    code, _, err = run_cli(capsys, *gen)
    assert code == 0, err
    image = Image.open(tmp_path / "g" / "p_seed1.png")
    assert image.size == (64, 64) and json.loads(image.text["posedraw"])["top_k"] == 20
    grid = np.load(tmp_path / "g" / "p_seed1.codes.npy")
    assert grid.shape == (16, 16) and np.issubdtype(grid.dtype, np.integer)
    code, _, err = run_cli(capsys, *gen[:-4], "--progress-row", "--out", tmp_path / "g2", "--device", "cpu")
    assert code == 2 and "--progress-row" in err and not list(tmp_path.glob("g2/*.png"))
    tune = ["tune", tmp_path / "g" / "p_seed1.codes.npy", "--model", out / "model", "--prompt", "colorful",
            "--clip", "posedraw-tiny-clip", "--steps", "2", "--cutouts", "2", "--out", tmp_path / "t"]  # fmt: skip
    code, _, err = run_cli(capsys, *tune)
    assert code == 0, err
    assert (tmp_path / "t" / "p_seed1_tuned.png").is_file()
    assert json.loads(Image.open(tmp_path / "t" / "p_seed1_tuned.png").text["posedraw"])["seed"] == 1


def test_guidance_is_refused_for_a_model_trained_without_the_null_pose():
    from posedraw.pipelines.code_transformer import CodeTransformerPipeline

    pipeline = CodeTransformerPipeline(None, build_transformer(TINY), TINY, pose_dropout=0.0)  # fails before the VQ
    with pytest.raises(PosedrawError, match="--guidance"):
        pipeline([make_toy_sample(0, 64).pose], [0], Sampling(guidance=2.0), progress=False)
