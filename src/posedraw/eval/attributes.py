"""Did the drawing follow the prompt? A small CNN that reads a toy figure's attributes back from the image.

Four attributes of the toy world are visible at 64 px: hair colour (8), hair length (2), outfit kind (3)
and outfit colour (8). A prompt names some of them as tags (`red_hair`, `long_hair`, `blue_dress`); the
classifier predicts all four, and an image counts as right for an attribute its prompt names when the
prediction matches. Why a classifier and not colours sampled where the pose puts the head and torso: the
pose says where the joints are, not how big the head is or where the hair ends, and decoded images blur
colours across edges; a classifier trained on renders (half of them through the built-in VQ, as generated
images are) learns those regions itself, and its accuracy on held-out renders is measured (tests and
`posedraw train attribute-classifier`), so its verdicts can be trusted for toy figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posedraw.data.images import to_tensor
from posedraw.data.toy import HAIR, OUTFIT, OUTFITS, make_toy_sample
from posedraw.models.text import Prompt, prompt_tags

WEIGHTS = Path(__file__).parent / "weights" / "toy_attributes.safetensors"
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "hair": tuple(HAIR),
    "hair_length": ("short", "long"),
    "outfit": OUTFITS,
    "outfit_colour": tuple(OUTFIT),
}


def prompt_attributes(prompt: Prompt) -> dict[str, int]:
    """The attributes a prompt names, as class indices: {"hair": 3, "outfit": 0, "outfit_colour": 1}."""
    named: dict[str, int] = {}
    for tag in prompt_tags(prompt):
        if tag in ("long_hair", "short_hair"):
            named["hair_length"] = ATTRIBUTES["hair_length"].index(tag.removesuffix("_hair"))
            continue
        colour, _, thing = tag.rpartition("_")
        if thing == "hair" and colour in ATTRIBUTES["hair"]:
            named["hair"] = ATTRIBUTES["hair"].index(colour)
        elif thing in ATTRIBUTES["outfit"] and colour in ATTRIBUTES["outfit_colour"]:
            named["outfit"] = ATTRIBUTES["outfit"].index(thing)
            named["outfit_colour"] = ATTRIBUTES["outfit_colour"].index(colour)
    return named


class AttributeClassifier(nn.Module):
    """Four strided conv blocks (64 -> 4 px) and one linear head per attribute over the flattened 4 x 4 map:
    the heads see where a colour is (hair above, outfit below), which global pooling would mix up."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers, channels = [], 3
        for out in (width, 2 * width, 3 * width, 3 * width):
            layers += [nn.Conv2d(channels, out, 3, 2, 1), nn.GroupNorm(8, out), nn.SiLU(),
                       nn.Conv2d(out, out, 3, 1, 1), nn.GroupNorm(8, out), nn.SiLU()]  # fmt: skip
            channels = out
        self.features = nn.Sequential(*layers)
        flat = channels * 4 * 4
        self.heads = nn.ModuleDict({name: nn.Linear(flat, len(values)) for name, values in ATTRIBUTES.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.shape[-1] != 64 or images.shape[-2] != 64:
            images = F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        flat = self.features(images).flatten(1)
        return {name: head(flat) for name, head in self.heads.items()}


def toy_batch(seeds: list[int], vq=None, chunk: int = 256) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Renders of single toy figures and their four attributes; through `vq` (encode, decode) if given."""
    from posedraw.models.vq import decode, encode

    samples = [make_toy_sample(seed, 64) for seed in seeds]
    images = torch.stack([to_tensor(s.image) for s in samples])
    if vq is not None:
        with torch.no_grad():
            parts = [decode(vq, encode(vq, part)).clamp(-1, 1).float() for part in images.split(chunk)]
        images = torch.cat(parts)
    labels = [prompt_attributes(s.tags) for s in samples]
    return images, {name: torch.tensor([row[name] for row in labels]) for name in ATTRIBUTES}


@dataclass
class TrainReport:
    steps: int
    final_loss: float


def train_classifier(
    steps: int = 1500, batch: int = 64, seed: int = 0, vq=None, count: int = 6000, progress: bool = True
) -> tuple[AttributeClassifier, TrainReport]:
    """Train on `count` renders (seeds from `seed * 10**7`; with `vq`, half of them through it), drawn in
    random batches: rendering once and reusing is several times faster than fresh renders every step."""
    from posedraw.progress import tracked

    first = seed * 10**7
    images, labels = toy_batch(list(range(first, first + count // 2)))
    decoded, decoded_labels = toy_batch(list(range(first + count // 2, first + count)), vq)
    images = torch.cat([images, decoded])
    labels = {name: torch.cat([labels[name], decoded_labels[name]]) for name in ATTRIBUTES}
    torch.manual_seed(seed)
    model = AttributeClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    loss = torch.zeros(())
    for _ in tracked(range(steps), "training the attribute classifier", enabled=progress):
        rows = torch.randint(0, len(images), (batch,))
        logits = model(images[rows])
        loss = sum(F.cross_entropy(logits[name], labels[name][rows]) for name in ATTRIBUTES)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval(), TrainReport(steps, float(loss))


def save_classifier(model: AttributeClassifier, path: Path) -> None:
    from safetensors.torch import save_file

    from posedraw.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))


def load_classifier(path: Path = WEIGHTS) -> AttributeClassifier:
    from safetensors.torch import load_file

    from posedraw.errors import CheckpointError

    if not path.is_file():
        raise CheckpointError(f"{path}: no attribute classifier weights (posedraw train attribute-classifier)")
    model = AttributeClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.eval()


@torch.no_grad()
def classify(model: AttributeClassifier, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The predicted class of every attribute, per image."""
    return {name: logits.argmax(dim=-1) for name, logits in model(images.float()).items()}


@dataclass
class AttributeReport:
    """Per attribute: how many images' prompts named it and the share drawn as named."""

    counts: dict[str, int]
    accuracy: dict[str, float]

    @property
    def mean(self) -> float:
        """Accuracy over every (image, named attribute) pair."""
        total = sum(self.counts.values())
        return sum(self.accuracy[n] * c for n, c in self.counts.items()) / total if total else float("nan")

    def as_dict(self) -> dict:
        return {"attribute_accuracy": round(self.mean, 4),
                "per_attribute": {n: {"images": self.counts[n], "accuracy": round(self.accuracy[n], 4)}
                                  for n in self.counts}}  # fmt: skip


def attribute_accuracy(predicted: dict[str, torch.Tensor], prompts: list[Prompt]) -> AttributeReport:
    """Compare predictions with what each prompt named (attributes a prompt does not name are not scored)."""
    hits: dict[str, list[bool]] = {name: [] for name in ATTRIBUTES}
    for row, prompt in enumerate(prompts):
        for name, wanted in prompt_attributes(prompt).items():
            hits[name].append(int(predicted[name][row]) == wanted)
    counts = {n: len(h) for n, h in hits.items() if h}
    return AttributeReport(counts, {n: float(np.mean(hits[n])) for n in counts})


def held_out_accuracy(model: AttributeClassifier, count: int = 256, vq=None) -> AttributeReport:
    """Accuracy on renders never trained on (seeds from 9 * 10**8), through `vq` if given."""
    seeds = list(range(900_000_000, 900_000_000 + count))
    images, labels = toy_batch(seeds, vq)
    predicted = classify(model, images)
    return AttributeReport({n: count for n in ATTRIBUTES},
                           {n: float((predicted[n] == labels[n]).float().mean()) for n in ATTRIBUTES})  # fmt: skip


__all__ = [
    "ATTRIBUTES", "AttributeClassifier", "AttributeReport", "attribute_accuracy", "classify", "held_out_accuracy",
    "load_classifier", "prompt_attributes", "save_classifier", "toy_batch", "train_classifier",
]  # fmt: skip
