"""Synthetic anime-like figures: a procedural renderer that draws a character in a given pose.

Everything is drawn from the joint positions (head from the face joints, torso between shoulders and
hips, limbs along the bones), so the figure's true pose is known exactly: the training data, the tests and
the demo can check what a model drew against what it was asked to draw. Each sample also gets tags and a
caption ("red hair, long hair, blue dress, arms raised").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from posedraw.data.poses import SampledPose, sample_pose
from posedraw.pose import JOINTS, Pose

J = {name: i for i, name in enumerate(JOINTS)}
HAIR = {
    "black": (30, 28, 35),
    "brown": (110, 70, 40),
    "blonde": (235, 205, 110),
    "red": (200, 50, 45),
    "blue": (60, 110, 220),
    "pink": (240, 140, 190),
    "white": (235, 235, 240),
    "green": (70, 170, 90),
}
OUTFIT = {
    "red": (205, 45, 55),
    "blue": (45, 80, 200),
    "green": (50, 150, 80),
    "yellow": (230, 200, 50),
    "purple": (130, 70, 170),
    "black": (35, 35, 40),
    "white": (240, 240, 240),
    "orange": (240, 140, 40),
}
SKIN = ((255, 224, 200), (240, 200, 170), (200, 150, 115), (150, 105, 80))
EYES = {"blue": (40, 90, 200), "green": (40, 150, 70), "brown": (100, 60, 30), "red": (190, 30, 40)}
OUTFITS = ("dress", "shirt", "jacket")
KIND_PHRASES = {
    "standing": "standing",
    "walking": "walking",
    "arms_raised": "arms raised",
    "waving": "waving",
    "sitting": "sitting",
}


@dataclass(frozen=True)
class Appearance:
    hair: str
    long_hair: bool
    skin: int
    outfit: str
    outfit_colour: str
    eyes: str
    background: tuple[tuple[int, int, int], tuple[int, int, int]]

    @property
    def tags(self) -> list[str]:
        return [
            f"{self.hair}_hair",
            "long_hair" if self.long_hair else "short_hair",
            f"{self.outfit_colour}_{self.outfit}",
            f"{self.eyes}_eyes",
        ]


def random_appearance(rng: np.random.Generator) -> Appearance:
    def pick(options) -> str:
        return str(options[rng.integers(len(options))])

    top, bottom = rng.integers(120, 256, 3), rng.integers(60, 230, 3)
    return Appearance(
        hair=pick(list(HAIR)),
        long_hair=bool(rng.random() < 0.5),
        skin=int(rng.integers(len(SKIN))),
        outfit=pick(OUTFITS),
        outfit_colour=pick(list(OUTFIT)),
        eyes=pick(list(EYES)),
        background=(tuple(int(c) for c in top), tuple(int(c) for c in bottom)),  # type: ignore[arg-type]
    )


def caption(appearance: Appearance, kind: str) -> str:
    length = "long hair" if appearance.long_hair else "short hair"
    return f"{appearance.hair} hair, {length}, {appearance.outfit_colour} {appearance.outfit}, {KIND_PHRASES[kind]}"


def _background(size: int, colours) -> Image.Image:
    top, bottom = (np.array(c, dtype=np.float64) for c in colours)
    ramp = np.linspace(0, 1, size)[:, None, None]
    rows = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
    return Image.fromarray(np.repeat(rows, size, axis=1))


def render_figure(pose: Pose, head_size: float, appearance: Appearance, size: int) -> Image.Image:
    """Draw the character with its joints at `pose` (full positions, canvas size x size)."""
    image = _background(size, appearance.background)
    draw = ImageDraw.Draw(image)
    p = {name: tuple(pose.xy[0, i]) for name, i in J.items()}
    h = head_size
    limb = max(1, round(0.32 * h))
    skin, hair, cloth = SKIN[appearance.skin], HAIR[appearance.hair], OUTFIT[appearance.outfit_colour]
    ears = (np.array(p["left_ear"]) + np.array(p["right_ear"])) / 2
    head_centre = (ears[0] * 0.5 + p["nose"][0] * 0.5, ears[1] - 0.05 * h)
    radius = 0.55 * h
    neck = tuple((np.array(p["left_shoulder"]) + np.array(p["right_shoulder"])) / 2)

    def line(a, b, colour, width=limb) -> None:
        draw.line([a, b], fill=colour, width=width, joint="curve")

    def disc(c, r, colour) -> None:
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=colour)

    if appearance.long_hair:  # hair behind the head and shoulders
        draw.rounded_rectangle(
            [
                head_centre[0] - 1.25 * radius,
                head_centre[1] - 0.2 * radius,
                head_centre[0] + 1.25 * radius,
                neck[1] + 0.9 * h,
            ],
            radius=radius * 0.6,
            fill=hair,
        )
    legs = skin if appearance.outfit == "dress" else tuple(int(c * 0.6) for c in cloth)
    for side in ("left", "right"):
        line(p[f"{side}_hip"], p[f"{side}_knee"], legs)
        line(p[f"{side}_knee"], p[f"{side}_ankle"], legs)
        disc(p[f"{side}_ankle"], 0.6 * limb, (60, 40, 40))
    torso = [p["left_shoulder"], p["right_shoulder"], p["right_hip"], p["left_hip"]]
    if appearance.outfit == "dress":  # a skirt from the hips flaring out towards the knees
        knee_y = (p["left_knee"][1] + p["right_knee"][1]) / 2
        flare = 0.35 * h
        draw.polygon(
            [p["left_hip"], p["right_hip"], (p["right_hip"][0] - flare, knee_y), (p["left_hip"][0] + flare, knee_y)],
            fill=cloth,
        )
    draw.polygon(torso, fill=cloth)
    line(neck, head_centre, skin, width=max(1, round(0.3 * h)))
    sleeve = cloth if appearance.outfit in ("jacket", "dress") else skin
    for side in ("left", "right"):
        line(p[f"{side}_shoulder"], p[f"{side}_elbow"], cloth)
        line(p[f"{side}_elbow"], p[f"{side}_wrist"], sleeve if appearance.outfit == "jacket" else skin)
        disc(p[f"{side}_wrist"], 0.55 * limb, skin)
    disc(head_centre, radius, skin)
    draw.chord(
        [
            head_centre[0] - 1.05 * radius,
            head_centre[1] - 1.1 * radius,
            head_centre[0] + 1.05 * radius,
            head_centre[1] + 0.6 * radius,
        ],
        180,
        360,
        fill=hair,
    )  # bangs
    for side in ("left", "right"):
        disc(p[f"{side}_eye"], max(0.6, 0.11 * h), EYES[appearance.eyes])
    return image


@dataclass(frozen=True)
class ToySample:
    image: Image.Image
    pose: Pose  # the label: joints outside the canvas are absent
    tags: list[str]
    caption: str
    kind: str


def make_toy_sample(seed: int, size: int = 64, kind: str | None = None) -> ToySample:
    """The toy sample of `seed`: the same seed always gives the same figure, pose and caption."""
    rng = np.random.default_rng(seed)
    sampled: SampledPose = sample_pose(rng, size, kind)
    appearance = random_appearance(rng)
    image = render_figure(sampled.full, sampled.head_size, appearance, size)
    tags = [*appearance.tags, sampled.kind] + (["out_of_frame"] if sampled.out_of_frame else [])
    return ToySample(image, sampled.label, tags, caption(appearance, sampled.kind), sampled.kind)


@dataclass(frozen=True)
class ToyMaker:
    """Builds the toy sample of a seed as a dataset sample (picklable, for parallel shard building)."""

    size: int

    def __call__(self, seed: int):
        from posedraw.data.shards import Sample

        toy = make_toy_sample(seed, self.size)
        key = f"toy{seed:08d}"
        meta = {"source": "toy", "seed": seed, "tags": toy.tags, "caption": toy.caption, "kind": toy.kind}
        return Sample(key, toy.image, toy.pose, meta), manifest_row(key, "toy", toy.pose, toy.tags)


def manifest_row(key: str, source: str, pose: Pose, tags: list[str], status: str = "kept", reason: str | None = None):
    """One manifest row; the pose is stored normalized to the canvas (x/width, y/height, state) for statistics."""
    normalized = [
        [round(float(x) / pose.width, 5), round(float(y) / pose.height, 5), int(s)] if s else [None, None, 0]
        for (x, y), s in zip(pose.xy[0], pose.state[0])
    ]
    return {
        "id": key,
        "source": source,
        "canvas": [pose.width, pose.height],
        "tags": tags,
        "visible_joints": int(pose.visible[0].sum()),
        "status": status,
        "reason": reason,
        "pose": normalized,
    }
