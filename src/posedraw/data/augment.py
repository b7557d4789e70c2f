"""Keypoint-consistent augmentation: random crop/scale and horizontal flip move the joints with the image.

The same numbers transform image and pose (crop window, resize, flip), using the pose toolkit's
transforms, so joints stay on the content; joints pushed out of the frame become absent, and a flip swaps
left and right joints.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image

from posedraw.pose import Pose, crop, flip_horizontal, resize


@dataclass(frozen=True)
class Augmentation:
    min_scale: float = 0.8  # the crop's side as a fraction of the image's shorter side, at least
    flip: float = 0.5  # probability of a horizontal flip


def augment(
    image: Image.Image, pose: Pose, size: int, rng: random.Random, aug: Augmentation
) -> tuple[Image.Image, Pose]:
    """A random square crop (then resized to size x size) and maybe a flip, applied to both."""
    if pose.canvas != (float(image.width), float(image.height)):
        pose = resize(pose, image.width, image.height)
    side = max(1, round(min(image.size) * rng.uniform(aug.min_scale, 1.0)))
    left, top = rng.randint(0, image.width - side), rng.randint(0, image.height - side)
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    pose = resize(crop(pose, left, top, side, side), size, size)
    if rng.random() < aug.flip:
        image, pose = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), flip_horizontal(pose)
    return image, pose
