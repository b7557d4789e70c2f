"""Import of original VQGAN checkpoints: parity with the reference fixtures and with independent variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from posedraw.compat.vq import convert_state_dict, convert_vq_checkpoint, map_key
from posedraw.errors import CheckpointError
from posedraw.models.vq import VQConfig, decode, decode_codes, encode, load_vq, quantize, save_vq

from .taming_reference import TamingVQGAN

#: largest absolute error allowed per quantity: about 10x the error measured against the reference on
#: 2026-11-26 (x86_64, 1 torch thread): pre-quantization latents 4.0e-7 (f16) / 1.6e-7 (f4), quantized
#: latents 0 (exact codebook rows), reconstructions 1.24e-5 (f16) / 7.2e-6 (f4).
TOLERANCE = {"prequant": 5e-6, "quant": 1e-6, "recon": 1.5e-4}


def _close(ours: torch.Tensor, expected: torch.Tensor, quantity: str) -> bool:
    return float((ours - expected).abs().max()) <= TOLERANCE[quantity]


@pytest.mark.parametrize("name", ["taming_vqgan_f16_tiny", "ldm_kp_f4_tiny"])
def test_fixture_checkpoints_reproduce_the_reference_numerics(fixtures, name, tmp_path):
    folder = fixtures / name
    vq = convert_vq_checkpoint(folder / "model.ckpt", folder / "config.yaml")
    expected = load_file(folder / "expected.safetensors")
    image = torch.from_numpy(np.asarray(Image.open(folder / "vq_input.png").convert("RGB")).copy())
    image = image.permute(2, 0, 1)[None].float() / 127.5 - 1.0
    assert torch.equal(image, expected["vq_image"])
    # through a saved and reloaded model folder, as users run it
    vq = load_vq(save_vq(vq, tmp_path / "vq"))
    with torch.no_grad():
        latents = encode(vq, image)
        quant, indices = quantize(vq, latents)
        assert _close(latents, expected["vq_prequant"], "prequant")
        assert torch.equal(indices, expected["vq_indices"])
        if "vq_quant" in expected:
            assert _close(quant, expected["vq_quant"], "quant")
        assert _close(decode(vq, latents), expected["vq_recon"], "recon")
        assert _close(decode_codes(vq, indices), expected["vq_recon"], "recon")


VARIANTS = {
    "f8 attention in two levels, 2 res blocks": dict(ch=32, ch_mult=(1, 2, 2, 4), num_res_blocks=2,
                                                     attn_resolutions=(16, 8), resolution=64, z_channels=4,
                                                     embed_dim=4, n_embed=32),
    "f4 attention at full resolution": dict(ch=32, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=(32,),
                                            resolution=32, z_channels=3, embed_dim=3, n_embed=16),
    "f16 z != embed_dim": dict(ch=32, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=1, attn_resolutions=(4,),
                               resolution=64, z_channels=16, embed_dim=8, n_embed=24),
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_converted_variants_match_an_independent_reference(variant):
    params = VARIANTS[variant]
    torch.manual_seed(0)
    reference = TamingVQGAN(**params).eval()
    with torch.no_grad():  # non-trivial norms, so a swapped norm would show
        for name, p in reference.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    state = {**reference.state_dict(), "loss.discriminator.main.0.weight": torch.zeros(1)}
    config = VQConfig(**{k: v for k, v in params.items()})
    vq = convert_state_dict(state, config)
    x = torch.rand(2, 3, params["resolution"], params["resolution"]) * 2 - 1
    with torch.no_grad():
        z_ref, z = reference.encode(x), encode(vq, x)
        assert torch.allclose(z, z_ref, atol=1e-5)
        assert torch.equal(quantize(vq, z)[1], reference.indices(z_ref))
        assert torch.allclose(decode(vq, z), reference.decode(z_ref), atol=1e-4)


def test_unknown_keys_missing_weights_and_wrong_shapes_are_named():
    params = VARIANTS["f4 attention at full resolution"]
    state = TamingVQGAN(**params).state_dict()
    config = VQConfig(**params)
    with pytest.raises(CheckpointError, match=r"'encoder\.extra\.weight'"):
        convert_state_dict({**state, "encoder.extra.weight": torch.zeros(1)}, config)
    partial = {k: v for k, v in state.items() if k != "decoder.conv_out.bias"}
    with pytest.raises(CheckpointError, match=r"no weights for decoder\.conv_out\.bias"):
        convert_state_dict(partial, config)
    with pytest.raises(CheckpointError, match="shape"):
        convert_state_dict(state, VQConfig(**{**params, "n_embed": 17}))
    with pytest.raises(CheckpointError, match="no place in the model"):
        convert_state_dict(state, VQConfig(**{**params, "attn_resolutions": ()}))


def test_decoder_levels_are_counted_from_the_lowest_resolution():
    assert map_key("decoder.up.0.upsample.conv.weight", 4) == "decoder.up_blocks.3.upsamplers.0.conv.weight"
    assert map_key("decoder.up.3.attn.1.proj_out.bias", 4) == "decoder.up_blocks.0.attentions.1.to_out.0.bias"
    assert (
        map_key("encoder.down.2.block.0.nin_shortcut.weight", 4)
        == "encoder.down_blocks.2.resnets.0.conv_shortcut.weight"
    )
    assert map_key("encoder.down.2.block.0.bogus.weight", 4) is None


def test_pickles_that_need_more_than_tensors_are_refused_unless_trusted(tmp_path, fixtures):
    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {}, "hparams": _Opaque()}, path)
    config = fixtures / "ldm_kp_f4_tiny" / "config.yaml"
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        convert_vq_checkpoint(path, config)
    with pytest.raises(CheckpointError, match="no weights for"):  # trusted: it loads, then has no weights
        convert_vq_checkpoint(path, config, trust_checkpoint=True)


class _Opaque:
    pass
