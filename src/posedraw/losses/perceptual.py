"""LPIPS perceptual distance (the `lpips` package) with an explicit source for its VGG16 backbone.

LPIPS needs two sets of weights: its small linear heads (shipped inside the `lpips` wheel) and the VGG16
ImageNet backbone, which torchvision downloads into its cache on first use. Offline, that download fails
with an unhelpful network error, so the backbone is resolved here first: from the torch hub cache, from a
file path, or, only when a config says `untrained` explicitly, a random backbone (tests; it is logged).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from posedraw.errors import CheckpointError

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's IMAGENET1K_V1 weights
UNTRAINED = "untrained"
TORCHVISION_CACHE = "torchvision"
log = logging.getLogger(__name__)


def vgg16_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def resolve_backbone(source: str) -> Path | None:
    """The VGG16 weights file for `source` ('torchvision', a path, or 'untrained' -> None)."""
    if source == UNTRAINED:
        return None
    path = vgg16_cache_path() if source == TORCHVISION_CACHE else Path(source)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: LPIPS needs the VGG16 ImageNet weights ({VGG16_FILE}). Online, fetch them once with "
            "python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\"; offline, copy "
            f"the file to {vgg16_cache_path().parent} or set perceptual_backbone to its path"
        )
    return path


def build_lpips(source: str = TORCHVISION_CACHE) -> torch.nn.Module:
    """An LPIPS(vgg) module in eval mode with frozen weights; inputs in [-1, 1]."""
    import lpips

    weights = resolve_backbone(source)
    with warnings.catch_warnings():  # lpips calls torchvision with its deprecated `pretrained` argument
        warnings.simplefilter("ignore", UserWarning)
        metric = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    if weights is None:
        log.warning("LPIPS uses an UNTRAINED VGG16 backbone (perceptual_backbone: untrained): for tests only")
    else:
        _load_backbone(metric, weights)
    for p in metric.parameters():
        p.requires_grad_(False)
    return metric.eval()


def _load_backbone(metric: torch.nn.Module, path: Path) -> None:
    """Copy torchvision VGG16 `features.{i}` weights into LPIPS' slices, whose children are named by i."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file
        raise CheckpointError(f"{path}: not readable VGG16 weights ({exc.__class__.__name__})") from None
    for slice_module in metric.net.children():
        for index, layer in slice_module.named_children():
            for name, param in layer.named_parameters(recurse=False):
                key = f"features.{index}.{name}"
                if key not in state or state[key].shape != param.shape:
                    raise CheckpointError(f"{path}: expected torchvision VGG16 weights, missing {key}")
                param.data.copy_(state[key])
