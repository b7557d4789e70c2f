"""The formulas that training and sampling share, each one a plain tensor function tested against its formula
(tests/test_diffusion_math.py): the loss weighting and clean-latent prediction of diffusion, the guidance
composition both generators use, and the code transformer's filtering and drawing of a categorical."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma loss weights per sample (Hang et al. 2023): min(SNR, gamma) / SNR for eps,
    min(SNR, gamma) / (SNR + 1) for v, so that no timestep's loss dominates the others."""
    alpha = alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alpha / (1 - alpha)
    clipped = snr.clamp(max=gamma)
    return clipped / (snr + 1) if prediction == "v_prediction" else clipped / snr


def predicted_x0(model_input: torch.Tensor, output: torch.Tensor, alpha_bar: torch.Tensor, kind: str) -> torch.Tensor:
    """The clean latent a network output implies, from the variance-preserving model input
    x_t = sqrt(a) x0 + sqrt(1 - a) eps: from eps, from v = sqrt(a) eps - sqrt(1 - a) x0, or the output itself."""
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if kind == "epsilon":
        return (model_input - s * output) / a
    if kind == "v_prediction":
        return a * model_input - s * output
    return output


def guided(
    posed: torch.Tensor,
    base: torch.Tensor | None = None,
    texted: torch.Tensor | None = None,
    pose_scale: float = 1.0,
    text_scale: float = 1.0,
) -> torch.Tensor:
    """Classifier-free guidance with two conditions: e(0,0) + s_pose (e(p,0) - e(0,0)) + s_text (e(p,t) - e(p,0)),
    where `base` = e(0,0), `posed` = e(p,0), `texted` = e(p,t); a term whose prediction was not made (None)
    drops out. The same on noise predictions and on logits."""
    result = posed if base is None else base + pose_scale * (posed - base)
    return result if texted is None else result + text_scale * (texted - posed)


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Temperature, then top-k, then nucleus (top-p) filtering; removed entries become -inf."""
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        ordered, order = torch.sort(logits, descending=True, dim=-1)
        probs = ordered.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # keep the smallest prefix reaching top_p
        drop[..., 0] = False  # and always the likeliest, even where top_p rounds to 0 in float32
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def draw_categorical(probs: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """(B, 1) indices, row i drawn from the (B, n) probabilities `probs[i]` with `generators[i]` (on their
    device): argmax of p / E with E ~ Exp(1) (the exponential race: index j wins with probability p_j).
    The draw `torch.multinomial(p, 1)` makes, without its check that reads the values on the host, so
    drawing never waits for the device."""
    race = torch.stack(
        [torch.empty_like(p).exponential_(1, generator=g) for p, g in zip(probs, generators, strict=True)]
    )
    return (probs / race).argmax(-1, keepdim=True)


__all__ = ["draw_categorical", "filter_logits", "guided", "predicted_x0", "snr_weights"]
