"""Import of the original system's checkpoints (taming-transformers VQGANs, CompVis / lxj616 latent diffusion)."""
