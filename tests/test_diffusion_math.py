"""The shared formulas of models/diffusion_math.py, each against its formula written out independently."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler

from posedraw.models.diffusion_math import draw_categorical, filter_logits, guided, predicted_x0, snr_weights
from posedraw.models.guidance import GuidanceScales


def test_snr_weights_are_min_snr_gamma_over_snr_or_snr_plus_one():
    alphas = torch.tensor([0.99, 0.5, 0.01])
    t = torch.tensor([0, 1, 2])
    snr = [0.99 / 0.01, 1.0, 0.01 / 0.99]
    eps = [min(s, 5.0) / s for s in snr]
    v = [min(s, 5.0) / (s + 1) for s in snr]
    torch.testing.assert_close(snr_weights(alphas, t, 5.0, "epsilon"), torch.tensor(eps))
    torch.testing.assert_close(snr_weights(alphas, t, 5.0, "v_prediction"), torch.tensor(v))


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_predicted_x0_recovers_the_clean_latent_from_an_exact_prediction(kind):
    """x_t = sqrt(a) x0 + sqrt(1 - a) eps; an exact eps, v = sqrt(a) eps - sqrt(1 - a) x0 or x0 gives x0 back
    (checked against diffusers' own noising and velocity)."""
    torch.manual_seed(0)
    schedule = DDPMScheduler(num_train_timesteps=1000)
    x0, noise, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.tensor([700])
    noisy = schedule.add_noise(x0, noise, t)
    exact = {"epsilon": noise, "v_prediction": schedule.get_velocity(x0, noise, t), "sample": x0}[kind]
    torch.testing.assert_close(predicted_x0(noisy, exact, schedule.alphas_cumprod[700], kind), x0, atol=1e-5, rtol=1e-5)


def test_guidance_composes_pose_and_text_terms_and_drops_the_missing_ones():
    base, posed, texted = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([4.0])
    # e00 + sp (ep0 - e00) + st (ept - ep0) = 1 + 2 * 2 + 3 * 1
    assert guided(posed, base, texted, 2.0, 3.0).item() == 8.0
    assert guided(posed, base, None, 2.0, 3.0).item() == 5.0  # no text term
    assert guided(posed, None, texted, 2.0, 3.0).item() == 6.0  # pose scale 1: e00 not made
    scales = GuidanceScales(2.0, 3.0)
    branches = scales.branches(with_text=True)
    assert scales.combine(torch.cat([base, posed, texted]), branches).item() == 8.0  # the branches in batch order


def test_temperature_divides_logits_and_top_k_and_top_p_keep_the_likeliest_entries():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    torch.testing.assert_close(filter_logits(logits, temperature=0.5), logits * 2)
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [[True, False, False, False]]
    # a mass too small for float32 (1e-308 rounds to 0) still keeps the likeliest code instead of none
    assert torch.isfinite(filter_logits(logits, top_p=1e-308)).tolist() == [[True, False, False, False]]
    kept = filter_logits(logits, top_k=3)
    assert torch.equal(kept[:, :3], logits[:, :3])  # what is kept is untouched


def test_drawing_a_categorical_is_torch_multinomial_with_each_rows_generator():
    """The same indices as `torch.multinomial(p, 1, generator=g)` row by row (so seeds draw what they always
    drew), and frequencies that follow the probabilities."""
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.1, 0.1, 0.1, 0.7]])
    for seed in range(20):
        ours = draw_categorical(probs, [torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 99)])
        theirs = [torch.multinomial(p, 1, generator=torch.Generator().manual_seed(s)) for p, s in
                  zip(probs, [seed, seed + 99])]  # fmt: skip
        assert torch.equal(ours, torch.stack(theirs))
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(
        torch.cat([draw_categorical(probs[:1], [generator]) for _ in range(4000)]).flatten(), minlength=4
    )
    assert counts[3] == 0
    frequencies = counts / 4000
    assert all(math.isclose(f, p, abs_tol=0.03) for f, p in zip(frequencies.tolist(), probs[0].tolist()))
