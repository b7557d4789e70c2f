"""Inference: load a saved model folder, run it, save images with their metadata."""
