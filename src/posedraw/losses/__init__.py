"""Training losses of the VQGAN first stages: reconstruction, perceptual (LPIPS), adversarial, codebook."""
