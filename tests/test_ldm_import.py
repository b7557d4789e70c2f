"""Import of original keypoint LDM checkpoints: parity with the fixture and with derived architectures."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

from posedraw.compat.ldm import (
    UNET_PREFIX,
    convert_ldm_checkpoint,
    convert_unet,
    scheduler_from_original,
    unet_config_from_original,
)
from posedraw.errors import CheckpointError, PosedrawError
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.pose import read_pose

#: largest absolute error allowed per quantity: about 10x the error measured against the reference on
#: 2026-11-26 (x86_64, 1 torch thread): eps 3.4e-6 (EMA) / 4.6e-6 (live weights), DDIM latent 1.07e-4 (values
#: up to 156), DDIM image 7.8e-6. A real regression (e.g. EMA vs live weights: 2.2) is far outside.
TOLERANCE = {"eps": 5e-5, "ddim_latent": 1.5e-3, "ddim_image": 1e-4}


def _close(ours: torch.Tensor, expected: torch.Tensor, quantity: str) -> bool:
    return float((ours - expected).abs().max()) <= TOLERANCE[quantity]


@pytest.fixture(scope="module")
def fixture(fixtures):
    folder = fixtures / "ldm_kp_f4_tiny"
    return folder, load_file(folder / "expected.safetensors")


@pytest.fixture(scope="module")
def pipeline(fixture, tmp_path_factory) -> KeypointLDMPipeline:
    folder, _ = fixture
    converted = convert_ldm_checkpoint(folder / "model.ckpt", folder / "config.yaml")
    saved = tmp_path_factory.mktemp("pipeline")
    converted.save_pretrained(saved)
    return KeypointLDMPipeline.from_pretrained(saved)  # as users load it: safetensors, no pickle


@pytest.mark.parametrize(("use_ema", "key"), [(True, "unet_eps"), (False, "unet_eps_nonema")])
def test_unet_reproduces_reference_noise_predictions(fixture, use_ema, key):
    folder, expected = fixture
    unet = convert_ldm_checkpoint(folder / "model.ckpt", folder / "config.yaml", use_ema=use_ema).unet
    with torch.no_grad():
        eps = unet(expected["unet_x"], expected["unet_t"], encoder_hidden_states=expected["unet_context"]).sample
    assert _close(eps, expected[key], "eps")
    other = expected["unet_eps_nonema" if use_ema else "unet_eps"]
    assert not _close(eps, other, "eps")  # EMA and live weights really differ


def test_legacy_context_of_the_example_poses_is_the_reference_context(pipeline, fixture, keypoint_files):
    _, expected = fixture
    poses = [read_pose(keypoint_files["1000846"]), read_pose(keypoint_files["1001870"])]
    context = pipeline.pose_encoder(**pipeline.pose_encoder.prepare(poses)).context
    assert torch.equal(context, expected["unet_context"])
    assert torch.equal(context[:1], expected["ddim_context"])


@pytest.mark.slow
def test_ddim_10_steps_reproduces_the_reference_latent_and_image(pipeline, fixture, keypoint_files):
    _, expected = fixture
    pose = read_pose(keypoint_files["1000846"])
    out = pipeline([pose], latents=expected["ddim_xT"], sampler="ddim", steps=10, eta=0.0)
    assert _close(out.latents, expected["ddim_latent"], "ddim_latent")
    assert _close(out.images, expected["ddim_image"], "ddim_image")
    assert pipeline.scheduler.config.steps_offset == 1 and not pipeline.scheduler.config.set_alpha_to_one


def test_original_checkpoints_have_no_null_pose_so_guidance_is_refused(pipeline, keypoint_files):
    with pytest.raises(PosedrawError, match="without a null pose"):
        pipeline([read_pose(keypoint_files["1000846"])], steps=2, guidance=3.0)


def _derived_config(fixture, **unet_changes) -> dict:
    folder, _ = fixture
    original = yaml.safe_load((folder / "config.yaml").read_text())
    config = copy.deepcopy(original)
    params = config["model"]["params"]["unet_config"]["params"]
    for key, value in unet_changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return config


@pytest.mark.parametrize(
    ("changes", "heads"),
    [
        ({"num_heads": None, "num_head_channels": 16}, [2, 4, 4]),
        ({"transformer_depth": 2}, [4, 4, 4]),
        ({"attention_resolutions": [1, 4], "channel_mult": [1, 2, 3]}, [4, 4, 4]),
    ],
)
def test_structure_is_derived_from_the_config(fixture, changes, heads):
    """Variants of the fixture's architecture: their weights, named as the original names them, convert back.

    The original layout of each variant is produced from a diffusers UNet by the inverse of diffusers' own
    mapping: here we check that everything derived from the config (heads, depth, block types) lines up with
    every key and shape, and that converting is lossless.
    """
    config = _derived_config(fixture, **changes)
    unet_config = unet_config_from_original(config)
    assert unet_config["attention_head_dim"] == heads
    torch.manual_seed(0)
    reference = UNet2DConditionModel(**unet_config).eval()
    original_names = _to_original_names(reference, unet_config)
    converted = convert_unet(original_names, unet_config, "variant")
    for name, tensor in reference.state_dict().items():
        assert torch.equal(converted.state_dict()[name], tensor), name
    x, t, context = torch.randn(1, 3, 16, 16), torch.tensor([10]), torch.randn(1, 1, 17)
    with torch.no_grad():
        assert torch.allclose(converted(x, t, context).sample, reference(x, t, context).sample)


def _to_original_names(unet: UNet2DConditionModel, config: dict) -> dict[str, torch.Tensor]:
    """Invert diffusers' LDM -> diffusers key mapping for this architecture (keys of the original UNet)."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    state = unet.state_dict()
    blocks = len(config["block_out_channels"])
    per = config["layers_per_block"]
    names: dict[str, str] = {}
    # enumerate the original keys by structure: input_blocks, middle_block, output_blocks
    probe = {}
    index = 1
    for level in range(blocks):
        for layer in range(per):
            probe[f"down_blocks.{level}.resnets.{layer}"] = f"input_blocks.{index}.0"
            probe[f"down_blocks.{level}.attentions.{layer}"] = f"input_blocks.{index}.1"
            index += 1
        if level != blocks - 1:
            probe[f"down_blocks.{level}.downsamplers.0.conv"] = f"input_blocks.{index}.0.op"
            index += 1
    index = 0
    for level in range(blocks):
        for layer in range(per + 1):
            probe[f"up_blocks.{level}.resnets.{layer}"] = f"output_blocks.{index}.0"
            probe[f"up_blocks.{level}.attentions.{layer}"] = f"output_blocks.{index}.1"
            if layer == per and level != blocks - 1:
                has_attention = config["up_block_types"][level].startswith("CrossAttn")
                probe[f"up_blocks.{level}.upsamplers.0.conv"] = (
                    f"output_blocks.{index}.{2 if has_attention else 1}.conv"
                )
            index += 1
    probe.update({"mid_block.resnets.0": "middle_block.0", "mid_block.attentions.0": "middle_block.1",
                  "mid_block.resnets.1": "middle_block.2"})  # fmt: skip
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}  # fmt: skip
    resnet_parts = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                    "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}  # fmt: skip
    for key in state:
        for new, old in {**fixed, **probe}.items():
            if key.startswith(new + "."):
                rest = key[len(new) + 1 :]
                if ".resnets." in new or new.startswith("mid_block.resnets"):
                    part, _, leaf = rest.partition(".")
                    rest = f"{resnet_parts[part]}.{leaf}"
                names[key] = f"{old}.{rest}"
                break
    assert set(names) == set(state), sorted(set(state) - set(names))[:3]
    original = {UNET_PREFIX + names[k]: v for k, v in state.items()}
    # sanity: diffusers' own forward mapping brings every key back to where it came from
    assert set(convert_ldm_unet_checkpoint(original, unet.config)) == set(state)
    return original


def test_unknown_unet_keys_and_bad_configs_are_named(fixture):
    config = _derived_config(fixture)
    unet_config = unet_config_from_original(config)
    original = _to_original_names(UNet2DConditionModel(**unet_config), unet_config)
    with pytest.raises(CheckpointError, match=r"input_blocks\.99\.0\.weight"):
        convert_unet({**original, UNET_PREFIX + "input_blocks.99.0.weight": torch.zeros(1)}, unet_config, "x")
    bad = _derived_config(fixture, use_spatial_transformer=False)
    with pytest.raises(CheckpointError, match="use_spatial_transformer"):
        unet_config_from_original(bad)
    config["model"]["params"]["beta_schedule"] = "cosine"
    with pytest.raises(CheckpointError, match="beta_schedule"):
        scheduler_from_original(config)


def test_scheduler_matches_the_checkpoint_schedule(fixture):
    folder, _ = fixture
    config = yaml.safe_load((folder / "config.yaml").read_text())
    stored = torch.load(folder / "model.ckpt", weights_only=True)["state_dict"]["alphas_cumprod"]
    scheduler = scheduler_from_original(config)
    assert torch.allclose(scheduler.alphas_cumprod.double(), stored.double(), atol=1e-7)
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.tolist() == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
