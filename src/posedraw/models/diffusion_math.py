"""The formulas of diffusion that training and sampling share, each one a plain tensor function."""

from __future__ import annotations

import torch


def snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma loss weights per sample (Hang et al. 2023): min(SNR, gamma) / SNR for eps,
    min(SNR, gamma) / (SNR + 1) for v, so that no timestep's loss dominates the others."""
    alpha = alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alpha / (1 - alpha)
    clipped = snr.clamp(max=gamma)
    return clipped / (snr + 1) if prediction == "v_prediction" else clipped / snr


__all__ = ["snr_weights"]
