"""Saying what to draw: tag prompts, the tag encoder, two-condition guidance, and text through the CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image

from posedraw.builtin import builtin_model
from posedraw.config import from_dict
from posedraw.data.images import to_tensor
from posedraw.data.poses import sample_pose
from posedraw.data.toy import make_toy_sample
from posedraw.models.conditioning import PlacedPoseEncoder
from posedraw.models.guidance import GuidanceScales
from posedraw.models.text import TagEncoder, prompt_tags, tag_vocabulary
from posedraw.models.vq import encode, load_vq
from posedraw.pipelines import KeypointLDMPipeline
from posedraw.pipelines.drawing import CallText
from posedraw.pose import dump_pose
from posedraw.train.ldm import LatentDiffusionModule, LDMRunConfig, build_pipeline, sampling_scheduler
from tests.cli_helpers import run_cli
from tests.tiny_world import TINY_LDM, write_config

VOCABULARY = ["blue_dress", "long_hair", "red_hair"]


def test_prompts_are_tag_lists_in_either_spelling():
    assert prompt_tags("Red hair,  long hair, red hair,") == ["red_hair", "long_hair"]
    assert prompt_tags("red_hair long_hair") == ["red_hair", "long_hair"]  # a Danbooru tag string
    assert prompt_tags("red hair") == ["red_hair"] and prompt_tags("1girl") == ["1girl"]
    assert prompt_tags(["blue_dress", "Blue Dress"]) == ["blue_dress"]
    assert prompt_tags("  ") == []
    assert tag_vocabulary([["a", "b"], ["a"], ["a", "c"]], min_count=2) == ["a"]


def test_tag_encoder_ignores_order_and_unknown_tags_and_reads_no_tag_as_no_text():
    torch.manual_seed(0)
    encoder = TagEncoder(VOCABULARY, dim=8, max_tags=3)

    def tokens(prompt: str) -> torch.Tensor:
        return encoder(**encoder.prepare([prompt]))

    assert torch.equal(tokens("red hair, blue dress"), tokens("blue dress, red hair, purple cape"))
    assert not torch.equal(tokens("red hair"), tokens("blue dress"))
    assert encoder.unknown(["red hair, purple cape", "cape"]) == ["purple_cape", "cape"]
    assert torch.equal(tokens("purple cape"), encoder.null(1)) and torch.equal(tokens(""), encoder.null(1))


class StubUNet(ModelMixin, ConfigMixin):
    """A UNet stand-in whose output depends non-linearly on its whole input and context."""

    @register_to_config
    def __init__(self, sample_size: int = 16, channels: int = 3) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t, encoder_hidden_states, class_labels=None):
        context = torch.tanh(encoder_hidden_states * 3).sum(dim=(1, 2))[:, None, None, None]
        maps = x[:, 3:].sum(dim=1, keepdim=True)
        return SimpleNamespace(sample=torch.sin(x[:, :3] * self.scale + context) + 0.1 * maps)


def _stub_pipeline() -> KeypointLDMPipeline:
    torch.manual_seed(0)
    config = LDMRunConfig()
    return KeypointLDMPipeline(
        unet=StubUNet(), vq=load_vq(builtin_model()), scheduler=sampling_scheduler(config.diffusion),
        pose_encoder=PlacedPoseEncoder(dim=8, latent_size=16), text_encoder=TagEncoder(VOCABULARY, dim=8, max_tags=3),
    )  # fmt: skip


@pytest.mark.parametrize(("pose", "text"), [(2.0, 3.0), (1.0, 4.0), (2.5, 1.0)])
def test_two_condition_guidance_follows_the_formula_in_one_batch(pose, text):
    """eps = e(0,n) + s_p (e(p,n) - e(0,n)) + s_t (e(p,t) - e(p,n)), n the negative prompt (or no text)."""
    pipe = _stub_pipeline()
    poses = [make_toy_sample(3, 64).pose]
    scales = GuidanceScales(pose, text)
    call = CallText(["red hair"], ["long hair"], [()], [()])
    cond, branches = pipe._conditioning(poses, scales, call)
    x, t = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor(500)
    guided = pipe._denoise(x, t, cond, branches, scales)

    def alone(with_pose: bool, prompt: str) -> torch.Tensor:
        pose_cond = pipe.pose_encoder(**pipe.pose_encoder.prepare(poses), latent_size=(16, 16))
        if not with_pose:
            pose_cond = pipe.pose_encoder.null(1, (16, 16))
        context = torch.cat([pose_cond.context, pipe.text_encoder(**pipe.text_encoder.prepare([prompt]))], dim=1)
        return pipe.unet(torch.cat([x, pose_cond.maps], dim=1), t, context).sample

    e00, ep0, ept = alone(False, "long hair"), alone(True, "long hair"), alone(True, "red hair")
    expected = e00 + pose * (ep0 - e00) + text * (ept - ep0)
    assert torch.allclose(guided, expected, atol=1e-5)
    assert len(branches) == (3 if pose != 1.0 else 2)  # e(0, n) only when the pose is guided
    assert (ep0 - e00).abs().max() > 1e-2 and (ept - ep0).abs().max() > 1e-2  # the branches differ


@pytest.mark.slow
def test_a_tiny_model_trained_with_tags_draws_the_prompted_colour():
    """Red and blue images (encoded by the built-in VQ) tagged `red` / `blue` under random poses: after 150
    steps the prompt decides the colour of the drawing far more often than chance (8 of 16)."""
    vq = load_vq(builtin_model())
    colours = {"red": (210, 40, 40), "blue": (40, 60, 210)}
    latents = {
        name: encode(vq, to_tensor(Image.new("RGB", (64, 64), rgb))[None])[0].detach() for name, rgb in colours.items()
    }
    config = from_dict(LDMRunConfig, {
        "unet": {"sample_size": 16, "latent_channels": 3, "model_channels": 16, "channel_mult": [1, 2],
                 "num_res_blocks": 1, "attention_resolutions": [1, 2], "num_head_channels": 16, "context_dim": 16},
        "pose": {"mode": "tokens+maps", "dropout": 0.1},
        "text": {"kind": "tags", "tag_dropout": 0.0, "dropout": 0.2},
        "diffusion": {"prediction": "v_prediction", "min_snr_gamma": 5.0, "scale_factor": 1.0},
        "train": {"ema_decay": 0.0},
    })  # fmt: skip
    torch.manual_seed(0)
    module = LatentDiffusionModule(config, TagEncoder(["blue", "red"], dim=16, max_tags=1))
    optimizer = torch.optim.AdamW(module.trainable(), lr=2e-3)
    rng = np.random.default_rng(0)
    for _ in range(150):
        names = [str(rng.choice(["red", "blue"])) for _ in range(16)]
        poses = [sample_pose(rng, 64).label for _ in names]
        loss = module.loss(torch.stack([latents[n] for n in names]), poses, [[n] for n in names])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.ema.module.load_state_dict(torch.nn.ModuleDict(module.networks()).state_dict())
    pipe = build_pipeline(module, vq)
    poses = [sample_pose(np.random.default_rng(10**9 + i), 64).label for i in range(8)]
    right = 0
    for name in colours:
        images = pipe(poses, seeds=list(range(8)), steps=10, prompt=name, text_guidance=2.0).images
        red, blue = images[:, 0].mean(dim=(1, 2)), images[:, 2].mean(dim=(1, 2))
        right += int(((red > blue) if name == "red" else (blue > red)).sum())
    assert right >= 14, right  # measured 16 of 16 (2026-11-26); 80 steps gave 13


def test_text_options_on_a_pose_only_model_are_one_clear_error(capsys, tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(dump_pose(make_toy_sample(1, 64).pose)))
    for flag, value in (("--prompt", "red hair"), ("--negative-prompt", "blue dress"), ("--text-guidance", "2")):
        code, _, err = run_cli(capsys, "generate", "--model", "builtin:transformer", "--pose", tmp_path / "p.json",
                               flag, value, "--out", tmp_path / "out")  # fmt: skip
        assert code == 2
        assert err.strip() == f"error: {flag}: this model was trained without text (it draws from the pose alone)"
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(capsys, "generate", "--model", "builtin:transformer", "--pose", tmp_path / "p.json",
                           "--prompt", "", "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, err  # an empty prompt is no prompt


@pytest.mark.slow
def test_train_with_tags_then_prompt_warn_and_redraw_through_the_cli(world, capsys, tmp_path):
    """A tiny model trained on the tiny world's tags: its folder carries the vocabulary; a prompt is used,
    its unknown tags reported in one line, recorded in the PNG and redrawn from it; an empty prompt is none."""
    config = write_config(tmp_path, "ldm", {**TINY_LDM, "text": {"kind": "tags", "min_count": 2},
                                            "train": {**TINY_LDM["train"], "max_steps": 3}})  # fmt: skip
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "ldm", "--config", config, "--latents", world / "cache", "--vq",
                           world / "vq", "--out", out, "--device", "cpu")  # fmt: skip
    assert code == 0, err
    vocabulary = json.loads((out / "model" / "text_encoder" / "config.json").read_text())["vocabulary"]
    assert vocabulary == sorted(vocabulary) and len(vocabulary) >= 3  # the tags seen at least twice
    (tmp_path / "p.json").write_text(json.dumps(dump_pose(make_toy_sample(1, 32).pose)))
    known = vocabulary[0].replace("_", " ")
    gen = ["generate", "--model", out / "model", "--pose", tmp_path / "p.json", "--steps", "3", "--device", "cpu"]
    code, _, err = run_cli(capsys, *gen, "--prompt", f"{known}, purple cape", "--text-guidance", "2", "--out",
                           tmp_path / "a")  # fmt: skip
    assert code == 0, err
    assert "warning: tags this model does not know, ignored: purple_cape" in err
    recipe = json.loads(Image.open(tmp_path / "a" / "p_seed0.png").text["posedraw"])["options"]
    assert recipe["prompt"] == f"{known}, purple cape" and recipe["text_guidance"] == 2.0
    code, _, err = run_cli(capsys, "generate", "--from-png", tmp_path / "a" / "p_seed0.png", "--out", tmp_path / "b")
    assert code == 0, err
    first, again = (np.asarray(Image.open(tmp_path / d / "p_seed0.png")) for d in ("a", "b"))
    assert np.array_equal(first, again)
    code, _, err = run_cli(capsys, *gen, "--out", tmp_path / "none")
    code, _, err = run_cli(capsys, *gen, "--prompt", "", "--out", tmp_path / "empty")
    assert code == 0, err
    none, empty = (np.asarray(Image.open(tmp_path / d / "p_seed0.png")) for d in ("none", "empty"))
    assert np.array_equal(none, empty) and not np.array_equal(none, first)


def test_clip_text_encoder_gives_one_token_per_prompt_and_saves_without_the_clip(tmp_path):
    """The frozen open_clip text encoder (the tiny untrained config): one projected token per prompt, the
    null token for an empty prompt; its folder holds the projection, not the CLIP."""
    from posedraw.models.clip import TINY
    from posedraw.models.text import ClipTextEncoder
    from posedraw.train.ldm import make_text_encoder

    text = {"kind": "clip-text", "clip_model": TINY, "clip_pretrained": None}
    config = from_dict(LDMRunConfig, {"unet": {"context_dim": 8}, "text": text})
    encoder = make_text_encoder(config, [])
    tokens = encoder(**encoder.prepare(["red hair", "blue dress", ""]))
    assert tokens.shape == (3, 1, 8) and not torch.allclose(tokens[0], tokens[1])
    assert torch.equal(tokens[2:], encoder.null(1))
    encoder.save_pretrained(tmp_path / "text")
    assert sum(f.stat().st_size for f in (tmp_path / "text").iterdir()) < 10_000  # projection and null token only
    again = ClipTextEncoder.from_pretrained(tmp_path / "text")
    assert torch.allclose(again(**again.prepare(["red hair"])), tokens[:1], atol=1e-6)  # CLIP batched by 1, not 3


@pytest.mark.slow
def test_transformer_with_tags_takes_a_prompt_prefix_and_two_guidance_scales(world, capsys, tmp_path):
    """A tiny code transformer trained on the tiny world's tags: the tags come before the pose in its
    prefix; sampling with both guidance scales draws the same codes with and without the KV cache; the
    prompt reaches the logits; prompts go through generate and back from the PNG."""
    from posedraw.models.code_conditioning import PREFIX
    from posedraw.models.transformer import CodeSampler, Sampling
    from posedraw.pipelines import load_pipeline
    from tests.tiny_world import TINY_TRANSFORMER

    config = write_config(tmp_path, "tf", {**TINY_TRANSFORMER, "text": {"kind": "tags", "min_count": 2},
                                           "train": {**TINY_TRANSFORMER["train"], "max_steps": 3}})  # fmt: skip
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "transformer", "--config", config, "--codes", world / "cache", "--vq",
                           world / "vq", "--out", out, "--device", "cpu")  # fmt: skip
    assert code == 0, err
    pipe = load_pipeline(out / "model")
    encoder = pipe.pose_encoder
    assert pipe.takes_text and encoder.prefix_length == encoder.config.max_tags + PREFIX
    known = encoder.config.tags[0].replace("_", " ")
    pose = make_toy_sample(1, 32).pose
    prefix = encoder.prefix([pose], [f"{known}, purple cape"])
    assert prefix.shape == (1, encoder.prefix_length) and int(prefix[0, 0]) == encoder.tag_ids[encoder.config.tags[0]]
    assert encoder.unknown([f"{known}, purple cape"]) == ["purple_cape"]
    sampler = CodeSampler(pipe.transformer, encoder)
    guided = Sampling(guidance=2.0, text_guidance=3.0)
    cached, _ = sampler([pose], [0], guided, prompts=[known])
    recomputed, _ = sampler([pose], [0], guided, use_cache=False, prompts=[known])
    assert torch.equal(cached, recomputed)
    fed = []  # the prefixes the sampler feeds: a negative alone at text guidance 1 is not among them
    conditioning = sampler._conditioning
    sampler._conditioning = lambda *args: fed.append(conditioning(*args)[0]) or conditioning(*args)
    sampler([pose], [0], Sampling(), negatives=[known])
    sampler([pose], [0], Sampling())
    assert torch.equal(fed[0], fed[1])
    sampler._conditioning = conditioning
    with torch.no_grad():  # the prompt reaches the logits (3 training steps: too little to change a sample)
        logits = [pipe.transformer(encoder.prefix([pose], [p])).logits[0, -1] for p in (known, encoder.config.tags[-1])]
    assert (logits[0] - logits[1]).abs().max() > 1e-4
    (tmp_path / "p.json").write_text(json.dumps(dump_pose(pose)))
    gen = ["generate", "--model", out / "model", "--pose", tmp_path / "p.json", "--prompt", known, "--guidance", "2",
           "--text-guidance", "3", "--save-latent", "--out", tmp_path / "a"]  # fmt: skip
    code, _, err = run_cli(capsys, *gen)
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "a" / "p_seed0.codes.npy"), cached[0].numpy())
    redo = ["generate", "--from-png", tmp_path / "a" / "p_seed0.png", "--save-latent", "--out", tmp_path / "b"]
    code, _, err = run_cli(capsys, *redo)
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "b" / "p_seed0.codes.npy"), cached[0].numpy())


def test_a_pooled_text_path_fine_tuned_from_a_model_without_it_starts_as_that_model(tmp_path):
    """`text.pooled` adds the prompt's mean token to the timestep embedding; `--init` from a model without it
    starts with that path at zero (the same predictions), and once trained the path changes them."""
    from posedraw.train.ldm import start_from

    def module(pooled: bool) -> LatentDiffusionModule:
        config = from_dict(LDMRunConfig, {**TINY_LDM, "text": {"kind": "tags", "pooled": pooled}})
        return LatentDiffusionModule(config, TagEncoder(VOCABULARY, dim=16, max_tags=3))

    torch.manual_seed(0)
    plain = module(False)
    for parameter in plain.text_encoder.parameters():
        parameter.data.normal_()  # a "trained" tag encoder: it must be carried over, not learned afresh
    plain.ema.module.load_state_dict(torch.nn.ModuleDict(plain.networks()).state_dict())
    build_pipeline(plain, load_vq(builtin_model())).save_pretrained(tmp_path / "plain")
    pooled = module(True)
    start_from(pooled, tmp_path / "plain")
    poses = [make_toy_sample(5, 64).pose]
    x, t = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([400])

    def predict(m: LatentDiffusionModule, prompt: str) -> torch.Tensor:
        cond = m.pose_encoder(**m.pose_encoder.prepare(poses), latent_size=(8, 8))
        tokens = m.text_encoder(**m.text_encoder.prepare([prompt]))
        cond = cond.with_text(tokens, pooled=m.config.text.pooled)
        return m.unet(torch.cat([x, cond.maps], 1), t, encoder_hidden_states=cond.context,
                      class_labels=cond.pooled).sample  # fmt: skip

    with torch.no_grad():
        assert torch.allclose(predict(plain, "red hair"), predict(pooled, "red hair"), atol=1e-6)
        before = predict(pooled, "red hair") - predict(pooled, "blue dress")
        torch.nn.init.normal_(pooled.unet.class_embedding.linear_2.weight, std=0.1)
        after = predict(pooled, "red hair") - predict(pooled, "blue dress")
    assert (after - before).abs().max() > 1e-3  # the pooled path carries the prompt
