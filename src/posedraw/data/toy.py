"""Synthetic anime-like figures: a procedural renderer that draws a character in a given pose.

Everything is drawn from the joint positions (head from the face joints, torso between shoulders and
hips, limbs along the bones), so the figure's true pose is known exactly: the training data, the tests and
the demo can check what a model drew against what it was asked to draw. Each sample also gets tags and a
caption ("red hair, long hair, blue dress, arms raised"), and each figure its own tags as its person's
prompt (`person_prompts`; data sets store them in the pose, `Pose.prompts`), so a scene says who has which
attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from posedraw.data.poses import SampledPose, sample_pose
from posedraw.pose import Pose
from posedraw.pose.schema import JOINT_INDEX
from posedraw.pose.transforms import drop_outside

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


def person_prompt(appearance: Appearance, kind: str) -> str:
    """One figure's tags as its person's prompt: "red hair, long hair, blue dress, green eyes, waving"."""
    return ", ".join(tag.replace("_", " ") for tag in [*appearance.tags, kind])


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
    draw_figure(ImageDraw.Draw(image), pose.xy[0], head_size, appearance)
    return image


def draw_figure(draw: ImageDraw.ImageDraw, xy: np.ndarray, head_size: float, appearance: Appearance) -> None:
    """Draw one character with its joints at `xy` (17, 2) onto an image (scenes draw several)."""
    p = {name: tuple(xy[i]) for name, i in JOINT_INDEX.items()}
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


@dataclass(frozen=True)
class ToySample:
    image: Image.Image
    pose: Pose  # the label: joints outside the canvas are absent
    tags: list[str]
    caption: str
    kind: str
    person_prompts: tuple[str, ...] = ()  # each figure's tags, in the label's person order

    @property
    def prompted_pose(self) -> Pose:
        """The label with each figure's tags as its person's prompt (what data sets store)."""
        return self.pose.replace(prompts=self.person_prompts)


def make_toy_sample(seed: int, size: int = 64, kind: str | None = None) -> ToySample:
    """The toy sample of `seed`: the same seed always gives the same figure, pose and caption."""
    rng = np.random.default_rng(seed)
    sampled: SampledPose = sample_pose(rng, size, kind)
    appearance = random_appearance(rng)
    image = render_figure(sampled.full, sampled.head_size, appearance, size)
    tags = [*appearance.tags, sampled.kind] + (["out_of_frame"] if sampled.out_of_frame else [])
    prompts = (person_prompt(appearance, sampled.kind),)
    return ToySample(image, sampled.label, tags, caption(appearance, sampled.kind), sampled.kind, prompts)


#: side of each figure's square slot as a fraction of the canvas, by the number of figures in a scene
SLOT = {1: 1.0, 2: 0.62, 3: 0.46}
#: how often a scene of toy data with up to N figures holds 1, 2, ... N figures
PEOPLE_SHARES = {1: (1.0,), 2: (0.5, 0.5), 3: (0.4, 0.35, 0.25)}


def make_toy_scene(
    seed: int, size: int = 64, people: int = 2, looks: Sequence[Mapping[str, Any]] | None = None
) -> ToySample:
    """A scene of `people` figures side by side (1: exactly `make_toy_sample`). Each figure is posed in its
    own square slot, slots spread left to right over one background; the label holds every figure, left
    to right (`person_prompts`: each one's tags, in that order). Figures may overlap a little, as slots do;
    the later one is drawn in front. `looks` (one per person, in the label's order) replace fields of the
    figures' random appearances (`{"hair": "red"}`): the same scene with the attributes a bench asks for."""
    if people == 1 and looks is None:
        return make_toy_sample(seed, size)
    if people not in SLOT or people == 1:
        raise ValueError(f"people: expected 2 to {max(SLOT)} with looks, 1 to {max(SLOT)} without, got {people}")
    rng = np.random.default_rng([seed, people])
    slot = round(size * SLOT[people])
    appearances = [random_appearance(rng) for _ in range(people)]
    placed = []  # per figure, in slot (drawing) order: sampled pose, offset, label
    for left in np.linspace(0, size - slot, people):
        sampled = sample_pose(rng, slot, out_of_frame_share=0.0)  # a figure too big for its slot hides the next
        offset = np.array([left + rng.uniform(-0.05, 0.05) * slot, rng.uniform(0, size - slot)])
        label = drop_outside(Pose(sampled.label.xy + offset, sampled.label.state, size, size))
        placed.append((sampled, offset, label))
    order = sorted(range(people), key=lambda k: float(np.mean(placed[k][2].xy[0, placed[k][2].present[0], 0])))
    if looks is not None:  # looks are given left to right; figures are drawn in slot order
        appearances = [replace(appearances[k], **looks[order.index(k)]) for k in range(people)]
    image = _background(size, appearances[0].background)
    draw = ImageDraw.Draw(image)
    for (sampled, offset, _), appearance in zip(placed, appearances):
        draw_figure(draw, sampled.full.xy[0] + offset, sampled.head_size, appearance)
    kinds = [sampled.kind for sampled, _, _ in placed]
    tags = [f"{people}_figures"] + [tag for a, kind in zip(appearances, kinds) for tag in [*a.tags, kind]]
    captions = "; ".join(caption(a, kind) for a, kind in zip(appearances, kinds))
    label = Pose.stack([placed[k][2] for k in order])
    prompts = tuple(person_prompt(appearances[k], kinds[k]) for k in order)
    return ToySample(image, label, tags, captions, "+".join(kinds), prompts)


def people_in_scene(seed: int, max_people: int) -> int:
    """The number of figures of the scene of `seed` in toy data with up to `max_people` figures."""
    shares = PEOPLE_SHARES[max_people]
    return 1 + int(np.random.default_rng([seed, 1000]).choice(len(shares), p=shares))


@dataclass(frozen=True)
class ToyMaker:
    """Builds the toy sample of a seed as a dataset sample (picklable, for parallel shard building);
    with `max_people` > 1, scenes of 1 to max_people figures (`PEOPLE_SHARES`)."""

    size: int
    max_people: int = 1

    def __call__(self, seed: int):
        from posedraw.data.shards import Sample

        people = people_in_scene(seed, self.max_people) if self.max_people > 1 else 1
        toy = make_toy_scene(seed, self.size, people)
        key = f"toy{seed:08d}"
        meta = {"source": "toy", "seed": seed, "tags": toy.tags, "caption": toy.caption, "kind": toy.kind,
                "people": people}  # fmt: skip
        return Sample(key, toy.image, toy.prompted_pose, meta), manifest_row(key, "toy", toy.pose, toy.tags)


def manifest_row(key: str, source: str, pose: Pose, tags: list[str], status: str = "kept", reason: str | None = None):
    """One manifest row; the first person's pose is stored normalized to the canvas (x/width, y/height, state)
    for statistics, and `visible_joints` counts the most complete person's."""
    normalized = [
        [round(float(x) / pose.width, 5), round(float(y) / pose.height, 5), int(s)] if s else [None, None, 0]
        for (x, y), s in zip(pose.xy[0], pose.state[0])
    ]
    return {
        "id": key,
        "source": source,
        "canvas": [pose.width, pose.height],
        "tags": tags,
        "people": pose.num_people,
        "visible_joints": int(pose.visible.sum(axis=1).max(initial=0)),
        "status": status,
        "reason": reason,
        "pose": normalized,
    }
