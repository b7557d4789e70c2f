"""Evaluation: pose fidelity of generated images (toy detector or MediaPipe), image quality, CLIP score."""
