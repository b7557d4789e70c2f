"""The compiled paths (models/compile.py) give what the eager ones give, within float tolerance.

Compiling on a 2-core CPU takes tens of seconds even for these tiny networks, hence `slow`."""

from __future__ import annotations

import pytest
import torch

from posedraw.data.toy import make_toy_sample
from posedraw.models.compile import compile_unet
from posedraw.models.conditioning import PoseConditioning
from posedraw.models.transformer import CodeSampler, Sampling, TransformerConfig, build_transformer
from posedraw.models.transformer import pose_encoder_for as encoder_for
from posedraw.models.unet import UNetConfig, build_unet, denoise

TINY = TransformerConfig(num_codes=64, grid=4, pose_grid=8, layers=2, heads=2, width=32, pose_maps=True)
TINY_UNET = UNetConfig(sample_size=8, model_channels=16, channel_mult=(1, 2), attention_resolutions=(2,),
                       num_head_channels=8, context_dim=16)  # fmt: skip
TOLERANCE = 1e-4  # float32: the compiled kernels fuse and reorder the same arithmetic


@pytest.mark.slow
def test_the_compiled_transformer_step_gives_the_cached_steps_logits_and_codes():
    torch.manual_seed(0)
    model, encoder = build_transformer(TINY), encoder_for(TINY, null_pose=True)
    poses = [make_toy_sample(i, 64).pose for i in range(2)]
    eager, compiled = CodeSampler(model, encoder), CodeSampler(model, encoder, compiled=True)
    logits = {}
    for name, sampler in (("eager", eager), ("compiled", compiled)):  # under no_grad, as sampling runs
        prefix, maps = sampler._conditioning(poses, [(True, False)], [""] * 2, [""] * 2, "cpu")
        decoder, fed, rows = sampler.decoder(True, maps), prefix, []
        with torch.no_grad():
            for k in range(TINY.grid**2):
                rows.append(decoder.logits(fed, k))
                fed = rows[-1].argmax(-1, keepdim=True)
        logits[name] = torch.stack(rows)
    assert torch.allclose(logits["compiled"], logits["eager"], atol=TOLERANCE, rtol=0)
    sampling = Sampling(top_k=8, guidance=2.0)
    assert torch.equal(compiled(poses, [3, 4], sampling)[0], eager(poses, [3, 4], sampling)[0])


@pytest.mark.slow
def test_the_compiled_unet_predicts_and_trains_as_the_eager_one():
    torch.manual_seed(0)
    eager = build_unet(TINY_UNET, extra_in_channels=2)
    compiled = compile_unet(build_unet(TINY_UNET, extra_in_channels=2), "cpu")
    compiled.load_state_dict(eager.state_dict())  # the compiled module keeps its state dict's keys
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 500])
    cond = PoseConditioning(torch.randn(2, 5, 16), torch.randn(2, 2, 8, 8))
    outputs = [denoise(unet, x, t, cond) for unet in (eager, compiled)]
    assert torch.allclose(outputs[1], outputs[0], atol=TOLERANCE, rtol=0)
    for output in outputs:
        output.square().mean().backward()
    grads = [unet.conv_in.weight.grad for unet in (eager, compiled)]
    assert torch.allclose(grads[1], grads[0], atol=TOLERANCE, rtol=0)


def _builtin_drawing(**switches: bool) -> torch.Tensor:
    from posedraw.builtin import builtin_model
    from posedraw.pipelines import load_pipeline

    pipeline = load_pipeline(builtin_model(), "cpu").accelerate(**switches)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline([make_toy_sample(3, 64).pose], seeds=[5], steps=3).latents


@pytest.mark.slow
def test_channels_last_and_weights_cast_once_draw_the_same_latents():
    """channels_last is only a memory layout (float tolerance); bf16 weights cast once differ from fp32 by
    bf16 rounding, far less than latents of another seed differ."""
    reference = _builtin_drawing()
    assert torch.allclose(_builtin_drawing(channels_last=True), reference, atol=TOLERANCE, rtol=0)
    cast = _builtin_drawing(cast_once=True)
    assert (cast - reference).abs().mean() < 0.05 * reference.abs().mean()
