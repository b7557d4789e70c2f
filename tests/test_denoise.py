"""One denoise call (models/unet.py) for training and sampling, and the UNet config's one-line errors."""

from __future__ import annotations

import pytest
import torch

from posedraw.builtin import builtin_model
from posedraw.config import from_dict
from posedraw.data.toy import make_toy_sample
from posedraw.models import unet as unet_module
from posedraw.models.conditioning import PoseConditioning
from posedraw.models.guidance import GuidanceScales
from posedraw.models.unet import UNetConfig, build_unet, denoise
from posedraw.pipelines import load_pipeline
from posedraw.train.ldm import module as ldm_module
from posedraw.train.ldm.config import LDMRunConfig
from posedraw.train.ldm.module import LatentDiffusionModule

from .cli_helpers import run_cli
from .tiny_world import TINY_LDM, write_config

TINY_UNET = UNetConfig(sample_size=8, model_channels=16, channel_mult=(1, 2), attention_resolutions=(2,),
                       num_head_channels=8, context_dim=8)  # fmt: skip


def test_denoise_puts_the_maps_beside_the_latent_and_the_tokens_in_the_context():
    torch.manual_seed(0)
    unet = build_unet(TINY_UNET, extra_in_channels=2).eval()
    x, maps, context, t = (
        torch.randn(2, 3, 8, 8),
        torch.randn(2, 2, 8, 8),
        torch.randn(2, 5, 8),
        torch.tensor([10, 500]),
    )
    with torch.no_grad():
        expected = unet(torch.cat([x, maps], dim=1), t, encoder_hidden_states=context).sample
        got = denoise(unet, x, t, PoseConditioning(context, maps))
        other_context = denoise(unet, x, t, PoseConditioning(torch.randn(2, 5, 8), maps))
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, other_context)  # the context reaches the network


def test_training_and_sampling_both_call_the_one_denoise(monkeypatch):
    calls = []

    def spy(unet, x, t, cond):
        calls.append(x.shape)
        return unet_module.denoise(unet, x, t, cond)

    monkeypatch.setattr(ldm_module, "denoise", spy)
    module = LatentDiffusionModule(from_dict(LDMRunConfig, TINY_LDM))
    module.loss(torch.randn(2, 3, 8, 8), [make_toy_sample(i, 32).pose for i in range(2)])
    assert calls == [(2, 3, 8, 8)]

    from posedraw.pipelines import keypoint_ldm

    monkeypatch.setattr(keypoint_ldm, "denoise", spy)
    pipeline = load_pipeline("builtin")
    pipeline.set_progress_bar_config(disable=True)
    pipeline([make_toy_sample(0, 64).pose], seeds=[0], steps=2, guidance=2.0)
    branches = len(GuidanceScales(2.0).branches(False))
    assert calls[1:] == [(branches, 3, 16, 16)] * 2  # every guidance branch in one call per step


@pytest.mark.parametrize(
    ("unet", "message"),
    [({"num_head_channels": 24}, "expected multiples of num_head_channels (24), got 32, 64"),
     ({"num_head_channels": 0}, "expected multiples of num_head_channels (0), got 32, 64")],
)  # fmt: skip
def test_unet_widths_that_do_not_split_into_heads_are_one_line(capsys, tmp_path, unet, message):
    config = write_config(tmp_path, "ldm", {**TINY_LDM, "unet": {**TINY_LDM["unet"], **unet}})
    code, _, err = run_cli(capsys, "train", "ldm", "--config", config, "--latents", tmp_path / "none",
                           "--vq", builtin_model(), "--out", tmp_path / "run", "--device", "cpu")  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert err.strip() == f"error: {config}: unet: model_channels x channel_mult: {message}"
