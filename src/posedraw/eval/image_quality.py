"""Image quality and text agreement: Fréchet and kernel distances to real images, and CLIP score.

FID and KID compare the feature statistics of drawings with those of real images. Only the standard
Inception-v3 features (torch-fidelity's port of the TF-slim 2015-12-05 weights, pool3, 2048 numbers) make
the numbers papers call FID and KID; with any other extractor the same formulas are reported under the
extractor's name (`FD_toy-detector`, `KD_clip-ViT-B-32`) and never called FID. Features are computed once
by the extractor; the distances are torchmetrics' own math (`FrechetInceptionDistance` and
`KernelInceptionDistance` given a module that passes the features through), so there is no second copy of
the formulas here.

CLIP score is torchmetrics' definition, 100 * max(cos(image, prompt), 0), with an open_clip model loaded by
`posedraw.models.clip`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from posedraw.errors import CheckpointError, PosedrawError

INCEPTION = "inception"
TOY_DETECTOR = "toy-detector"
CLIP = "clip"
EXTRACTORS = (INCEPTION, TOY_DETECTOR, CLIP)
#: torchmetrics' default KID subset size (smaller sets use all their images in each subset)
KID_SUBSET = 1000
KID_SUBSETS = 100


@dataclass(frozen=True)
class NamedClip:
    """A loaded CLIP (posedraw.models.clip.Clip) and the name its numbers are labelled with."""

    clip: nn.Module
    name: str


class FeatureExtractor(nn.Module):
    """uint8 images (B, 3, H, W) -> features (B, num_features); `label` names the numbers it makes."""

    label: str
    num_features: int

    def float_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 in [0, 255] -> float in [-1, 1], posedraw's image convention."""
        return images.float() / 127.5 - 1.0


class InceptionFeatures(FeatureExtractor):
    """The standard FID extractor: torchmetrics' Inception-v3 (torch-fidelity's weights), pool3 features."""

    label = INCEPTION
    num_features = 2048

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        if weights is not None:
            _check_tensor_file(weights)
        path = None if weights is None else str(weights)
        try:
            self.net = NoTrainInceptionV3("inception-v3-compat", [str(self.num_features)], path)
        except ModuleNotFoundError:
            raise PosedrawError("FID/KID need torch-fidelity's Inception network: pip install torch-fidelity") from None
        except (OSError, RuntimeError, ValueError, KeyError) as exc:  # URLError is an OSError
            where = weights or "torch-fidelity's download (weights-inception-2015-12-05-6726825d.pth)"
            raise CheckpointError(
                f"Inception weights: {where} could not be loaded ({exc.__class__.__name__}); give the file with "
                "--inception-weights FILE, or another extractor with --features (its numbers are not FID)"
            ) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def _check_tensor_file(path: Path) -> None:
    """Refuse a weights file that is missing or holds anything but tensors (torch-fidelity unpickles it
    without `weights_only`; checking it here first keeps arbitrary pickles from running)."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such Inception weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a tensor pickle
        raise CheckpointError(f"{path}: not a PyTorch state dict of tensors ({exc.__class__.__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict (a mapping of tensors), got {type(state).__name__}")


class ToyDetectorFeatures(FeatureExtractor):
    """The shipped toy pose detector's last feature map, averaged over the image (48 numbers): an extractor
    trained on toy figures, for toy drawings where no Inception weights are at hand."""

    label = TOY_DETECTOR

    def __init__(self) -> None:
        super().__init__()
        from posedraw.eval.toy_detector import load_detector

        self.detector = load_detector()
        self.num_features = int(self.detector.head.in_channels)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        from posedraw.eval.toy_detector import INPUT

        x = self.float_images(images)
        x = F.interpolate(x, size=(INPUT, INPUT), mode="bilinear", align_corners=False, antialias=True)
        return self.detector.body(x).mean(dim=(-2, -1))


class ClipFeatures(FeatureExtractor):
    """An open_clip model's image embeddings (unit length)."""

    def __init__(self, named: NamedClip) -> None:
        super().__init__()
        self.clip = named.clip
        self.label = f"{CLIP}-{named.name}"
        self.num_features = int(named.clip.model.visual.output_dim)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_images(self.float_images(images))


def load_extractor(name: str, inception_weights: Path | None = None, clip: NamedClip | None = None) -> FeatureExtractor:
    """The extractor called `name` (one of EXTRACTORS); "clip" uses `clip`'s image embeddings."""
    if name == INCEPTION:
        return InceptionFeatures(inception_weights).eval()
    if inception_weights is not None:
        raise PosedrawError(f"--inception-weights: only used with --features {INCEPTION}, not {name}")
    if name == TOY_DETECTOR:
        return ToyDetectorFeatures().eval()
    if name == CLIP:
        if clip is None:
            raise PosedrawError("--features clip: name the CLIP model with --clip")
        return ClipFeatures(clip).eval()
    raise PosedrawError(f"--features: expected one of {', '.join(EXTRACTORS)}, got {name!r}")


@torch.no_grad()
def image_features(extractor: nn.Module, images: Sequence[torch.Tensor], batch: int = 64) -> torch.Tensor:
    """(N, D) features of uint8 images (3, H, W) of any sizes (images of one size go through together)."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        by_size.setdefault(tuple(image.shape), []).append(index)
    out: list[torch.Tensor | None] = [None] * len(images)
    for rows in by_size.values():
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            found = extractor(torch.stack([images[i] for i in chunk])).float()
            for i, row in zip(chunk, found):
                out[i] = row
    return torch.stack(out)  # type: ignore[arg-type]


class GivenFeatures(nn.Module):
    """Passes features through: torchmetrics' metrics then do only their math on features made once."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """torchmetrics' Fréchet distance between the Gaussians fitted to two feature sets (N, D), N >= 2."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=GivenFeatures(real.shape[1]))
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET, seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """torchmetrics' kernel distance (mean, std over `subsets` random subsets; a set smaller than
    `subset_size` uses all its images each time). Seeded: the same features give the same numbers."""
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=GivenFeatures(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def distance_names(label: str) -> tuple[str, str]:
    """The names of the two numbers: FID / KID only for the standard Inception features."""
    return ("fid", "kid") if label == INCEPTION else (f"FD_{label}", f"KD_{label}")


def distances(real: torch.Tensor, fake: torch.Tensor, label: str) -> dict[str, float | int]:
    """The Fréchet and kernel distances of two feature sets, named by the extractor's `label`."""
    if len(real) < 2 or len(fake) < 2:
        raise PosedrawError(f"{distance_names(label)[0]}: needs at least 2 drawings and 2 reference images, "
                            f"got {len(fake)} and {len(real)}")  # fmt: skip
    fd, kd = distance_names(label)
    mean, std = kernel_distance(real, fake)
    return {fd: frechet_distance(real, fake), kd: mean, f"{kd}_std": std,
            "kid_subset_size": min(KID_SUBSET, len(real), len(fake))}  # fmt: skip


@torch.no_grad()
def clip_scores(clip, images: torch.Tensor, prompts: Sequence[str], batch: int = 64) -> torch.Tensor:
    """100 * max(cos(image, prompt), 0) for each image (B, 3, H, W) in [-1, 1] and its prompt."""
    scores = []
    for start in range(0, len(images), batch):
        image = clip.encode_images(images[start : start + batch])
        text = clip.encode_texts(list(prompts[start : start + batch]))
        scores.append(100 * (image * text).sum(-1).clamp_min(0))
    return torch.cat(scores).float()
