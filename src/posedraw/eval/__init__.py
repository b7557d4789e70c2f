"""Evaluation of generated images: pose fidelity (PCK, OKS, left/right swaps; toy detector or MediaPipe), the
toy attribute judge, and the field's protocol (`posedraw eval report`): COCO OKS AP/AR of re-detected
people, person count error, FID/KID (or labelled distances of other features) and CLIP score."""
