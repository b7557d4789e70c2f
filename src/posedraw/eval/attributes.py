"""Did the drawing follow the prompt? A small network that reads a toy figure's attributes back from the
image at the places its pose locates.

Four attributes of the toy world are visible at 64 px: hair colour (8), hair length (2), outfit kind (3)
and outfit colour (8). A prompt names some of them as tags (`red_hair`, `long_hair`, `blue_dress`); the
judge predicts all four, and an image counts as right for an attribute its prompt names when the
prediction matches.

Why glimpses at the pose and not the whole image: every attribute sits at a place the pose says — hair
around the head and beside the neck, the outfit's colour on the torso, its kind on the forearms (a
jacket's sleeves), thighs and shins (a skirt, bare legs or trousers) — and a judge that must find those
places itself in a 64 px image of any pose misreads even exact renders (this judge's held-out accuracy
is measured in the tests and by `posedraw train attribute-classifier`). Why a trained network and not
fixed colour thresholds: the pose gives joints, not the head's size or where the hair ends, and decoded
images blur colours across edges; a network trained on renders (half of them through the built-in VQ, as
generated images are) with the pose jittered by a pixel or two (a drawing follows its pose closely, not
exactly) learns those margins. Each glimpse is a square crop (kornia's `crop_and_resize`) whose side scales
with the figure's torso.

Scenes of several figures are read person by person (`classify_people`: each person's glimpses at that
person's joints) and scored against each person's own prompt (`person_attribute_scores`), which also counts
**leakage**: an attribute drawn not as the person's own prompt names it but as another person of the same
picture's prompt does (the prompts bound to the wrong figures, or mixed into a bag).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posedraw.data.filters import torso_length
from posedraw.data.images import to_tensor
from posedraw.data.toy import HAIR, OUTFIT, OUTFITS, make_toy_scene
from posedraw.models.text import TextPrompt, prompt_tags
from posedraw.pose import Pose
from posedraw.pose.schema import JOINT_INDEX

WEIGHTS = Path(__file__).parent / "weights" / "toy_attributes.safetensors"
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "hair": tuple(HAIR),
    "hair_length": ("short", "long"),
    "outfit": OUTFITS,
    "outfit_colour": tuple(OUTFIT),
}


def prompt_attributes(prompt: TextPrompt) -> dict[str, int]:
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


#: the glimpses: name -> (joints whose mean is the centre, side in torso lengths, upward shift in torso lengths)
GLIMPSES: dict[str, tuple[tuple[str, ...], float, float]] = {
    "head": (("nose", "left_eye", "right_eye", "left_ear", "right_ear"), 0.8, 0.1),
    "neck": (("left_shoulder", "right_shoulder"), 1.0, 0.0),
    "torso": (("left_shoulder", "right_shoulder", "left_hip", "right_hip"), 0.6, 0.0),
    **{f"{side}_{part}": ((f"{side}_{a}", f"{side}_{b}"), 0.45, 0.0)
       for side in ("left", "right")
       for part, (a, b) in {"upper_arm": ("shoulder", "elbow"), "forearm": ("elbow", "wrist"),
                            "thigh": ("hip", "knee"), "shin": ("knee", "ankle")}.items()},
}  # fmt: skip
#: each crop's side in pixels: a glimpse spans about 3-7 image pixels on a figure of a 3-figure scene and 7-15 on a
#: single figure, so larger crops add nothing (24 read scenes no better in a short training run)
GLIMPSE_PIXELS = 16
#: the glimpse whose place must be in the picture for an attribute to be scored
SHOWN_BY = {"hair": "head", "hair_length": "neck", "outfit": "torso", "outfit_colour": "torso"}


def glimpse_boxes(poses: Sequence[Pose]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pose's first person's glimpse squares as kornia boxes (B, G, 4, 2) in its frame's pixels, and
    (B, G) whether the glimpse was found: every joint it centres on has a position (the head: any face
    joint) and its centre lies in the frame."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float32) / 2
    # a glimpse not found keeps a unit square (a zero-sized box has no crop transform) and is zeroed later
    boxes = np.tile(corners, (len(poses), len(GLIMPSES), 1, 1))
    found = np.zeros((len(poses), len(GLIMPSES)), dtype=bool)
    for b, pose in enumerate(poses):
        xy, present = pose.xy[0], pose.present[0]
        unit = torso_length(pose) or 0.4 * max(pose.width, pose.height)
        for g, (name, (joints, side, lift)) in enumerate(GLIMPSES.items()):
            rows = [JOINT_INDEX[j] for j in joints]
            seen = [r for r in rows if present[r]]
            if len(seen) < (1 if name == "head" else len(rows)):  # any face joint places the head (a profile)
                continue
            centre = xy[seen].mean(0) - np.array([0.0, lift * unit])
            if not (0 <= centre[0] < pose.width and 0 <= centre[1] < pose.height):
                continue  # its place is outside the picture
            boxes[b, g], found[b, g] = centre + corners * side * unit, True
    return torch.from_numpy(boxes), torch.from_numpy(found)


def glimpses(images: torch.Tensor, poses: Sequence[Pose]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, G, 3, n, n) crops of `images` (B, 3, H, W) at the glimpses of `poses` (in the images' frame;
    crops of missing glimpses are zero) and (B, G) which glimpses were found."""
    from kornia.geometry.transform import crop_and_resize

    boxes, found = glimpse_boxes(poses)
    count = boxes.shape[1]
    repeated = images.float().repeat_interleave(count, dim=0)
    crops = crop_and_resize(repeated, boxes.flatten(0, 1), (GLIMPSE_PIXELS, GLIMPSE_PIXELS))
    crops = crops.view(len(images), count, 3, GLIMPSE_PIXELS, GLIMPSE_PIXELS)
    return crops * found[:, :, None, None, None], found


class AttributeClassifier(nn.Module):
    """One small conv stack shared by every glimpse (colour and edges within a crop), then a layer over all
    glimpses together and one linear head per attribute: which glimpse holds what stays known."""

    def __init__(self, width: int = 24, hidden: int = 128) -> None:
        super().__init__()
        self.crop = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1), nn.SiLU(), nn.Conv2d(width, width, 3, 2, 1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )  # fmt: skip
        count = len(GLIMPSES)
        self.mix = nn.Sequential(nn.Linear(count * (4 * width + 1), hidden), nn.SiLU())
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, len(values)) for name, values in ATTRIBUTES.items()})

    def forward(self, crops: torch.Tensor, found: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.crop(crops.flatten(0, 1)).view(len(crops), crops.shape[1], -1)
        mixed = self.mix(torch.cat([features, found[..., None].float()], -1).flatten(1))
        return {name: head(mixed) for name, head in self.heads.items()}


def toy_batch(
    seeds: Sequence[int], vq=None, chunk: int = 256, people: int = 1
) -> tuple[torch.Tensor, list[Pose], dict[str, torch.Tensor]]:
    """Every figure of the toy scenes of `seeds` with `people` figures (1: single figures) as a row: the
    scene's render (through `vq`, encode and decode, if given), that person's pose and that figure's four
    attributes (from its own tags, `ToySample.person_prompts`)."""
    from posedraw.models.vq import decode, encode

    scenes = [make_toy_scene(seed, 64, people) for seed in seeds]
    images = torch.stack([to_tensor(s.image) for s in scenes])
    if vq is not None:
        with torch.no_grad():
            parts = [decode(vq, encode(vq, part)).clamp(-1, 1).float() for part in images.split(chunk)]
        images = torch.cat(parts)
    rows = [(i, k) for i, scene in enumerate(scenes) for k in range(scene.pose.num_people)]
    labels = [prompt_attributes(scenes[i].person_prompts[k]) for i, k in rows]
    poses = [scenes[i].pose.person(k) for i, k in rows]
    row_images = images[torch.tensor([i for i, _ in rows], dtype=torch.long)]
    return row_images, poses, {name: torch.tensor([row[name] for row in labels]) for name in ATTRIBUTES}


#: the share of training renders that are scenes of 1, 2 and 3 figures: figures of scenes are small (a 29 px slot
#: among 3) and their neighbours overlap their glimpses, which a judge of single figures never saw; single figures
#: stay about half of the rows (figures), as fewer of them read single figures worse (measured in the report)
SCENE_SHARES = {1: 0.7, 2: 0.15, 3: 0.15}


def training_scenes(seed: int, count: int) -> dict[int, range]:
    """The seeds of the `count` training renders by their number of figures (`SCENE_SHARES`), from
    `seed * 10**7` on: held-out seeds (from 9 * 10**8) are never among them."""
    seeds, first = {}, seed * 10**7
    for people, share in SCENE_SHARES.items():
        seeds[people] = range(first, first + max(2, round(count * share)))
        first = seeds[people].stop
    return seeds


def joined(batches) -> tuple[torch.Tensor, list[Pose], dict[str, torch.Tensor]]:
    """`toy_batch` results as one batch."""
    images, poses, labels = zip(*batches)
    merged = {name: torch.cat([part[name] for part in labels]) for name in ATTRIBUTES}
    return torch.cat(images), [pose for part in poses for pose in part], merged


def jittered(poses: Sequence[Pose], rng: np.random.Generator, pixels: float) -> list[Pose]:
    """The poses with every joint moved by a normal offset of `pixels` and each figure by another: a
    drawing follows its pose closely, not exactly."""
    out = []
    for pose in poses:
        shift = rng.normal(0, pixels, (1, 1, 2)) + rng.normal(0, pixels, pose.xy.shape)
        out.append(replace(pose, xy=pose.xy + shift))
    return out


@dataclass
class TrainReport:
    steps: int
    final_loss: float


def train_classifier(
    steps: int = 1500,
    batch: int = 64,
    seed: int = 0,
    vq=None,
    count: int = 6000,
    progress: bool = True,
    jitter: float = 1.0,
) -> tuple[AttributeClassifier, TrainReport]:
    """Train on every figure of `count` renders (`training_scenes`; with `vq`, half of them through it), drawn in
    random batches with the pose jittered by `jitter` pixels afresh each time: rendering once and reusing
    is several times faster than fresh renders every step."""
    from posedraw.progress import tracked

    parts = []
    for people, seeds in training_scenes(seed, count).items():
        half = len(seeds) // 2
        parts += [toy_batch(seeds[:half], people=people), toy_batch(seeds[half:], vq, people=people)]
    images, poses, labels = joined(parts)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AttributeClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    loss = torch.zeros(())
    for _ in tracked(range(steps), "training the attribute classifier", enabled=progress):
        rows = torch.randint(0, len(images), (batch,))
        logits = model(*glimpses(images[rows], jittered([poses[r] for r in rows.tolist()], rng, jitter)))
        loss = sum(F.cross_entropy(logits[name], labels[name][rows]) for name in ATTRIBUTES)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval(), TrainReport(steps, float(loss.detach()))


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


@dataclass
class Reading:
    """What the judge read in a batch of images: per attribute, the class of every image and whether the
    place that shows it is in the picture (a head outside the frame shows no hair colour)."""

    predicted: dict[str, torch.Tensor]
    visible: dict[str, torch.Tensor]


@torch.no_grad()
def classify(model: AttributeClassifier, images: torch.Tensor, poses: Sequence[Pose]) -> Reading:
    """Read every attribute of every image at the glimpses of its pose (in the image's frame:
    `posedraw.eval.fidelity.in_image_frame` turns a conditioning pose into it)."""
    crops, found = glimpses(images, poses)
    names = list(GLIMPSES)
    return Reading({name: logits.argmax(dim=-1) for name, logits in model(crops, found).items()},
                   {name: found[:, names.index(home)] for name, home in SHOWN_BY.items()})  # fmt: skip


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


def attribute_accuracy(reading: Reading, prompts: list[TextPrompt]) -> AttributeReport:
    """Compare what was read with what each prompt named; an attribute the prompt does not name, or whose
    place is outside the picture, is not scored (`counts` says how many were)."""
    scores = person_attribute_scores(reading, prompts, range(len(prompts)))  # each image a scene of its own
    return AttributeReport(scores.scored, {n: scores.hits[n] / c for n, c in scores.scored.items()})


@torch.no_grad()
def classify_people(model: AttributeClassifier, images: torch.Tensor, poses: Sequence[Pose]) -> Reading:
    """Read every person of every image at that person's own glimpses (poses in the images' frame): one
    row per person, image by image in person order (`scene_rows` says which image each row is of)."""
    people = [pose.person(k) for pose in poses for k in range(pose.num_people)]
    return classify(model, images[torch.tensor(scene_rows(poses), dtype=torch.long)], people)


def scene_rows(poses: Sequence[Pose]) -> list[int]:
    """For each person of `poses`, in `classify_people`'s row order, the index of its pose."""
    return [i for i, pose in enumerate(poses) for _ in range(pose.num_people)]


@dataclass
class PersonAttributeReport:
    """Per attribute, over the (person, attribute its prompt names) pairs whose place is in the picture:
    how many were scored, drawn as the person's own prompt names (hits), and drawn not so but as another
    person of the same picture names it (leaks); the rest are other errors."""

    scored: dict[str, int]
    hits: dict[str, int]
    leaks: dict[str, int]

    @property
    def accuracy(self) -> float:
        total = sum(self.scored.values())
        return sum(self.hits.values()) / total if total else float("nan")

    @property
    def leakage(self) -> float:
        total = sum(self.scored.values())
        return sum(self.leaks.values()) / total if total else float("nan")

    def as_dict(self) -> dict:
        per_attribute = {n: {"scored": c, "accuracy": round(self.hits[n] / c, 4),
                             "leakage": round(self.leaks[n] / c, 4)} for n, c in self.scored.items()}  # fmt: skip
        return {"attribute_accuracy": round(self.accuracy, 4), "leakage": round(self.leakage, 4),
                "scored": sum(self.scored.values()), "leaks": sum(self.leaks.values()),
                "per_attribute": per_attribute}  # fmt: skip


def person_attribute_scores(
    reading: Reading, prompts: Sequence[TextPrompt], scene_of: Sequence[int]
) -> PersonAttributeReport:
    """Score each row of `reading` (one person) against its own prompt; `scene_of[row]` names its picture.
    A miss is a leak when the drawn value is what another person of the same picture asked for (values two
    people share count as hits). Hair length has two values, so between two people who want different
    lengths every miss of it is a leak."""
    wanted = [prompt_attributes(prompt) for prompt in prompts]
    scenes: dict[int, list[int]] = {}
    for row, scene in enumerate(scene_of):
        scenes.setdefault(scene, []).append(row)
    scored, hits, leaks = ({name: 0 for name in ATTRIBUTES} for _ in range(3))
    for row, named in enumerate(wanted):
        others = [wanted[o] for o in scenes[scene_of[row]] if o != row]
        for name, value in named.items():
            if not reading.visible[name][row]:
                continue
            drawn = int(reading.predicted[name][row])
            scored[name] += 1
            hits[name] += drawn == value
            leaks[name] += drawn != value and any(other.get(name) == drawn for other in others)
    kept = [name for name in ATTRIBUTES if scored[name]]
    return PersonAttributeReport(*({n: d[n] for n in kept} for d in (scored, hits, leaks)))


def held_out_accuracy(model: AttributeClassifier, count: int = 256, vq=None, people: int = 1) -> AttributeReport:
    """Accuracy on every figure of `count` renders of `people` figures never trained on (seeds from
    9 * 10**8), through `vq` if given, over the attributes whose place is in the picture."""
    images, poses, labels = toy_batch(range(900_000_000, 900_000_000 + count), vq, people=people)
    reading = classify(model, images, poses)
    counts, accuracy = {}, {}
    for name in ATTRIBUTES:
        shown = reading.visible[name]
        counts[name] = int(shown.sum())
        accuracy[name] = float((reading.predicted[name] == labels[name])[shown].float().mean())
    return AttributeReport(counts, accuracy)


__all__ = [
    "ATTRIBUTES", "GLIMPSES", "SCENE_SHARES", "SHOWN_BY", "AttributeClassifier", "AttributeReport",
    "PersonAttributeReport", "Reading", "attribute_accuracy", "classify", "classify_people", "glimpse_boxes",
    "glimpses", "held_out_accuracy", "load_classifier", "person_attribute_scores", "prompt_attributes",
    "save_classifier", "scene_rows", "toy_batch", "train_classifier", "training_scenes",
]  # fmt: skip
