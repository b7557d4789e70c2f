"""A folder of images as a training set for the first stages.

Files are found recursively (jpg, jpeg, png, webp). Every file is checked once when the dataset is made;
unreadable ones are skipped and reported (never a crash in the middle of a run).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from posedraw.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def is_readable(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


def resize_and_crop(image: Image.Image, size: int, rng: random.Random | None = None) -> Image.Image:
    """Scale the shorter side to `size` and crop a size x size square (random if `rng`, else centred)."""
    image = image.convert("RGB")
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left = rng.randint(0, width - size) if rng else (width - size) // 2
    top = rng.randint(0, height - size) if rng else (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float (3, H, W) in [-1, 1] (x / 127.5 - 1, the original convention)."""
    array = np.asarray(image, dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0


def to_image(tensor: torch.Tensor) -> Image.Image:
    """float (3, H, W) in [-1, 1] -> RGB image (clamped)."""
    array = ((tensor.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())


@dataclass(frozen=True)
class FolderImage:
    """Decoder of image files: resized and cropped to `size`; with `augment`, a random crop and flip drawn
    from the sample's own generator."""

    size: int
    augment: bool = True

    def __call__(self, path: Path, rng: random.Random) -> torch.Tensor:
        with Image.open(path) as image:
            image = resize_and_crop(image, self.size, rng if self.augment else None)
        if self.augment and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(image)


@dataclass
class ImageFolder:
    """The readable images of a folder (recursive); unreadable files are listed in `skipped`."""

    root: Path
    size: int
    files: list[Path] = field(init=False)
    skipped: list[Path] = field(init=False)

    def __post_init__(self) -> None:
        candidates = find_images(self.root)
        self.files = [p for p in candidates if is_readable(p)]
        readable = set(self.files)
        self.skipped = [p for p in candidates if p not in readable]
        if not self.files:
            raise DataError(f"{self.root}: no readable images (looked for {', '.join(IMAGE_SUFFIXES)})")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image `index`, centre-cropped (no augmentation)."""
        return FolderImage(self.size, augment=False)(self.files[index], random.Random(0))
