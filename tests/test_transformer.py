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
from posedraw.errors import CheckpointError, ConfigError, PosedrawError
from posedraw.models.code_conditioning import PREFIX, placed_maps
from posedraw.models.transformer import CodeGPT, CodeSampler, KVCache, Sampling, TransformerConfig, build_transformer
from posedraw.models.transformer import pose_encoder_for as encoder_for
from posedraw.models.vq import load_vq
from posedraw.pipelines import CodeTransformerPipeline, load_pipeline
from posedraw.pose import JOINTS, dump_pose
from posedraw.train.driver import RunOptions
from posedraw.train.transformer import decay_groups, held_out_loss, train_transformer
from posedraw.train.transformer.module import sequence_loss
from tests.cli_helpers import run_cli

TINY = TransformerConfig(num_codes=64, grid=6, pose_grid=8, layers=2, heads=2, width=32, pose_maps=True)
PREFIX_ONLY = TransformerConfig(num_codes=64, grid=6, pose_grid=8, layers=2, heads=2, width=32)
SLOW = pytest.mark.slow  # the guided runs take twice the time: the fast loop keeps the unguided one


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
    marked = torch.zeros(1, TINY.grid**2, TINY.width)
    marked[0, 3] = 1.0  # the vector for code 3 ...
    added = placed_maps(marked, PREFIX + 5)
    assert added[0].abs().sum(-1).nonzero().flatten().tolist() == [PREFIX - 1 + 3]  # ... at the position predicting it


@pytest.mark.parametrize("config", [TINY, PREFIX_ONLY], ids=["maps", "prefix-only"])
@pytest.mark.parametrize(
    "sampling", [Sampling(), pytest.param(Sampling(temperature=0.7, top_k=8, top_p=0.9, guidance=2.0), marks=SLOW)]
)
def test_kv_cached_sampling_draws_the_same_codes_as_recomputing(sampling, config):
    sampler = _sampler(config)
    poses = [make_toy_sample(i, 64).pose for i in range(3)]
    cached, _ = sampler(poses, [4, 5, 6], sampling)
    assert torch.equal(cached, sampler(poses, [4, 5, 6], sampling, use_cache=False)[0])
    assert cached.shape == (3, 6, 6) and cached.max() < TINY.num_codes


def _scaled_up(config: TransformerConfig = TINY):
    """A model whose logits differ enough for a wrong position, cache or mask to show."""
    torch.manual_seed(0)
    model = build_transformer(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("autocast", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_one_forward_whole_and_cached_gives_transformers_gpt2_logits_at_every_position(autocast):
    """The weights mean what transformers' GPT-2 makes of them: `forward` over the whole sequence (training)
    and `forward_with_past` a token at a time (sampling) give its logits, with vectors added to the inputs
    (the pose maps), and under bf16 autocast as on a GPU."""
    model = _scaled_up()
    ids = torch.randint(0, TINY.null_token + 1, (2, TINY.num_positions))
    added = torch.randn(2, TINY.num_positions, TINY.width)
    with torch.no_grad(), torch.autocast("cpu", dtype=autocast or torch.float32, enabled=autocast is not None):
        reference = model(inputs_embeds=model.transformer.wte(ids) + added).logits[..., : TINY.num_codes].float()
        gpt = CodeGPT(model, TINY.num_codes)
        whole = gpt.forward(ids, added, 16).float()
        cache = KVCache(TINY.num_positions)
        steps = [gpt.forward_with_past(ids[:, :17], added[:, :17], cache)]
        steps += [gpt.forward_with_past(ids[:, i : i + 1], added[:, i : i + 1], cache) for i in range(17, ids.shape[1])]
    assert reference.std() > 1
    tolerance = 1e-4 if autocast is None else 0.1 * float(reference.std())  # bf16 keeps 8 bits of mantissa
    rtol = 1e-2 if autocast else 1e-4
    torch.testing.assert_close(whole, reference[:, 16:], atol=tolerance, rtol=rtol)
    torch.testing.assert_close(torch.stack(steps, 1), reference[:, 16:], atol=tolerance, rtol=rtol)


def test_several_tokens_after_cached_ones_attend_causally():
    """Feeding a block of tokens after the cache (not only the prefix) gives the whole forward's logits."""
    model = _scaled_up()
    ids = torch.randint(0, TINY.num_codes, (2, 30))
    gpt = CodeGPT(model, TINY.num_codes)
    with torch.no_grad():
        whole = gpt.forward(ids)
        cache = KVCache(30)
        gpt.forward_with_past(ids[:, :10], None, cache)
        block = gpt.forward_with_past(ids[:, 10:20], None, cache)
    torch.testing.assert_close(block, whole[:, 19], atol=1e-4, rtol=1e-4)


def test_training_loss_is_cross_entropy_under_transformers_gpt2():
    """The loss training minimizes is the one transformers' GPT-2 forward gives on the same sequence."""
    model = _scaled_up()
    codes = torch.randint(0, TINY.num_codes, (3, TINY.grid, TINY.grid))
    prefix = torch.randint(TINY.num_codes, TINY.null_token + 1, (3, PREFIX))
    maps = torch.randn(3, TINY.grid**2, TINY.width)
    ids = torch.cat([prefix, codes.flatten(1)[:, :-1]], dim=1)
    embeds = model.transformer.wte(ids) + placed_maps(maps, ids.shape[1])
    logits = model(inputs_embeds=embeds).logits[:, PREFIX - 1 :, : TINY.num_codes]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, TINY.num_codes), codes.flatten())
    torch.testing.assert_close(sequence_loss(model, TINY.num_codes, codes, prefix, maps), expected)


def test_gpt2_variants_the_forward_does_not_implement_are_refused_by_name():
    model = build_transformer(TINY)
    model.config.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(CheckpointError, match="scale_attn_by_inverse_layer_idx"):
        CodeGPT(model, TINY.num_codes)


@pytest.mark.parametrize(
    "sampling", [Sampling(), pytest.param(Sampling(temperature=0.8, top_k=20, guidance=2.0), marks=SLOW)]
)
def test_an_images_codes_depend_on_its_pose_and_seed_only(sampling):
    """Image k's codes for seed s are the same drawn alone or in a batch, wherever it stands in the batch."""
    sampler = _sampler()
    poses = [make_toy_sample(i, 64).pose for i in range(3)]
    together, _ = sampler(poses, [4, 5, 6], sampling)
    reordered, _ = sampler([poses[2], poses[0], poses[1]], [6, 4, 5], sampling)
    assert torch.equal(together[1:2], sampler(poses[1:2], [5], sampling)[0])
    assert torch.equal(reordered, together[[2, 0, 1]])
    assert not torch.equal(together[1:2], sampler(poses[1:2], [7], sampling)[0])


HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


def test_a_sampling_step_never_reads_the_device(monkeypatch):
    """Values reach the host once per drawing (the non-finite check at the end), not once per code: the
    count of host reads is the same for a grid of 4 codes and one of 36."""

    def reads(config: TransformerConfig) -> int:
        sampler, poses = _sampler(config), [make_toy_sample(1, 64).pose]
        sampler.encoder.maps(poses)  # numpy work on the host before sampling is not a device read
        count = [0]
        with monkeypatch.context() as patch:
            for name in HOST_READS:
                original = getattr(torch.Tensor, name)
                patch.setattr(torch.Tensor, name, lambda self, *a, _f=original, **k: count.__setitem__(0, count[0] + 1)
                              or _f(self, *a, **k))  # fmt: skip
            sampler(poses, [3], Sampling(top_k=8, top_p=0.9, guidance=2.0))
        return count[0]

    assert reads(replace(TINY, grid=2)) == reads(TINY) <= 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [({"grid": 20}, "n_positions: expected at least 417 (the pose encoder's prefix of 17 and 20x20 codes), got 273"),
     ({"pose_grid": 32}, "vocab_size: expected at least 1282 (the pose encoder's ids), got 322")],
)  # fmt: skip
def test_a_transformer_and_pose_encoder_that_do_not_belong_together_are_one_error(capsys, tmp_path, edit, message):
    """A model folder whose pose encoder wants more positions or ids than the transformer has: one line naming
    the transformer's config, no image (an index error deep in the forward otherwise)."""
    vq = load_vq(builtin_model())
    config = replace(TINY, num_codes=vq.config.num_vq_embeddings, grid=16)
    CodeTransformerPipeline(build_transformer(config), vq, encoder_for(config, null_pose=True)).save_pretrained(
        tmp_path / "m"
    )
    encoder_config = tmp_path / "m" / "pose_encoder" / "config.json"
    encoder_config.write_text(json.dumps({**json.loads(encoder_config.read_text()), **edit}))
    (tmp_path / "p.json").write_text(json.dumps(dump_pose(make_toy_sample(1, 64).pose)))
    capsys.readouterr()  # saving's progress bars
    code, _, err = run_cli(capsys, "generate", "--model", tmp_path / "m", "--pose", tmp_path / "p.json",
                           "--out", tmp_path / "out")  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert err.strip() == f"error: transformer/config.json {message}"
    assert not list((tmp_path / "out").glob("*.png"))


def test_weight_decay_spares_biases_norms_and_embeddings():
    model = build_transformer(TINY)
    decay, no_decay = (set(map(id, g["params"])) for g in decay_groups(model, 0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[i].endswith(("attn.weight", "proj.weight", "fc.weight")) for i in decay)
    assert any(names[i].endswith("wte.weight") for i in no_decay) and any("ln_" in names[i] for i in no_decay)


@pytest.mark.slow
def test_pose_lowers_held_out_cross_entropy_of_the_builtin_transformer(codes):
    """The shipped model (trained with pose dropout 0.1): held-out figures' codes are likelier given their
    poses than given the null pose."""
    _, held_codes, held_poses = codes
    pipeline = load_pipeline("builtin:transformer")
    losses = {with_pose: held_out_loss(pipeline, held_codes, held_poses, with_pose) for with_pose in (True, False)}
    # a model that ignored the pose would give equal losses; the shipped one is far more than 0.3 nats apart
    assert losses[True] < losses[False] - 0.3, losses


@pytest.mark.slow
def test_config_that_disagrees_with_the_cache_is_refused(codes, tmp_path):
    root, _, _ = codes
    config = yaml.safe_load(_config(tmp_path).read_text())
    config["model"]["num_codes"] = 1024
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"model\.num_codes"):
        train_transformer(tmp_path / "bad.yaml", root / "cache", builtin_model(), RunOptions(tmp_path / "o"))


@pytest.mark.slow
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


@pytest.mark.slow
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
