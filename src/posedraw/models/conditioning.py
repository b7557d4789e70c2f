"""Pose encoders: poses in, UNet conditioning out (cross-attention tokens and/or spatial maps).

Every encoder has two steps. `prepare` turns Pose objects into tensors on the CPU (numpy work, run in data
loaders during training). `forward` turns those tensors into a `PoseConditioning` on the model's device.
The pipeline only talks to this interface, so new encoders drop in without touching it. An encoder trained
with pose dropout also gives a `null` conditioning for classifier-free guidance.

`legacy` reproduces the original system: the 17 grid tokens of the pose as one (1, 17) float token, which
cross-attention can only use as a global bias (one key: softmax weight 1 everywhere).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from posedraw.errors import PoseError
from posedraw.models.person_text import PersonBinding, body_masks
from posedraw.pose import NUM_JOINTS, Pose, legacy_tokens
from posedraw.pose.render import gaussian_heatmaps
from posedraw.pose.schema import LIMB_INDICES
from posedraw.pose.transforms import square_padding


@dataclass
class PoseConditioning:
    """What the UNet receives: `context` (B, tokens, dim) for cross-attention, `maps` (B, C, h, w) to concat,
    `pooled` (B, dim) added to the timestep embedding (the text's mean token, for UNets built with one)."""

    context: torch.Tensor | None = None
    maps: torch.Tensor | None = None
    pooled: torch.Tensor | None = None

    @staticmethod
    def cat(parts: Sequence[PoseConditioning]) -> PoseConditioning:
        def join(items: list[torch.Tensor | None]) -> torch.Tensor | None:
            return None if items[0] is None else torch.cat(items)  # type: ignore[arg-type]

        return PoseConditioning(
            join([p.context for p in parts]), join([p.maps for p in parts]), join([p.pooled for p in parts])
        )

    def with_text(self, tokens: torch.Tensor, pooled: bool) -> PoseConditioning:
        """This conditioning with text `tokens` (B, n, dim) after the pose tokens; with `pooled`, their mean
        also goes to the timestep embedding, a path that reaches every resolution of the UNet (the tokens
        reach only the attention layers)."""
        tokens = tokens.to(self.context)
        return PoseConditioning(torch.cat([self.context, tokens], 1), self.maps, tokens.mean(1) if pooled else None)


def people_to_draw(pose: Pose, most: int, index: int = 0, model: str = "this model") -> list[int]:
    """The people of `pose` a body model draws, left to right: those with a body joint (a person with only
    hands or a face gives a body model nothing). Refuses a pose with none, or with more than `most`,
    rather than dropping anyone."""
    drawn = [p for p in range(pose.num_people) if pose.present[p].any()]
    if not drawn:
        raise PoseError(f"pose {index}: expected at least one joint with a position, the pose has none")
    if len(drawn) > most:
        many = "one person" if most == 1 else f"at most {most} people"
        raise PoseError(f"pose {index}: {model} draws {many}, the pose has {len(drawn)}")
    centres = [float(np.mean(pose.xy[p, pose.present[p], 0])) for p in drawn]
    return [p for _, p in sorted(zip(centres, drawn))]


class PoseEncoder(ModelMixin, ConfigMixin):
    """Base class: subclasses set `kind` and implement `prepare`, `forward` and (if trained for it) `null`."""

    kind: str = "base"
    #: extra UNet input channels the encoder's maps add (0 for token-only encoders)
    map_channels: int = 0

    @property
    def has_null(self) -> bool:
        return bool(getattr(self.config, "null_pose", False))

    @property
    def takes_person_prompts(self) -> bool:
        """Whether the encoder binds each person's prompt (`Pose.prompts`) to that person; the pipeline refuses
        per-person prompts for an encoder that does not, rather than drawing without them."""
        return False

    def prepare(self, poses: Sequence[Pose]) -> dict[str, torch.Tensor | list]:
        """The poses as tensors with the batch first (and, for an encoder that takes per-person prompts,
        `person_prompts`: one list of texts per pose, in the encoder's slot order, for the text encoder)."""
        raise NotImplementedError

    def null(self, batch: int, latent_size: tuple[int, int]) -> PoseConditioning:
        raise PoseError(
            f"the {self.kind} pose encoder was trained without a null pose, so classifier-free guidance is "
            "not available for this model (use --guidance 1)"
        )


class LegacyPoseEncoder(PoseEncoder):
    """The original (B, 1, 17) context: grid tokens `row_bin + 32 * col_bin` as floats, no parameters."""

    kind = "legacy"

    @register_to_config
    def __init__(self, num_joints: int = NUM_JOINTS, null_pose: bool = False) -> None:
        super().__init__()
        # a model needs a tensor to have a device and a dtype, and to save and load like the other components
        self.register_buffer("scale", torch.ones(()))

    def prepare(self, poses: Sequence[Pose]) -> dict[str, torch.Tensor]:
        model = "the original (legacy) model"
        people = [people_to_draw(p, 1, i, model)[0] for i, p in enumerate(poses)]
        tokens = np.stack([legacy_tokens(p.person(person))[0] for p, person in zip(poses, people)])
        return {"tokens": torch.from_numpy(tokens)}

    def forward(self, tokens: torch.Tensor, latent_size: tuple[int, int] | None = None) -> PoseConditioning:
        context = tokens.to(self.scale.device, torch.float32)[:, None, :] * self.scale
        return PoseConditioning(context=context)


def fourier_features(xy: torch.Tensor, bands: int) -> torch.Tensor:
    """(..., 2) positions in [0, 1] -> (..., 4 * bands) sines and cosines at octave frequencies."""
    frequencies = (2.0 ** torch.arange(bands, device=xy.device, dtype=xy.dtype)) * math.pi
    angles = xy[..., None] * frequencies  # (..., 2, bands)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def square_normalized(pose: Pose, person: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One person's joints in [0, 1] of the pose padded to a centred square, and states.

    The padding is `square_padding`'s, the one the data pipeline pads images and poses with (an odd margin
    puts its extra pixel on the right or bottom), so a joint lands where the padded image has it."""
    left, top, _, _ = square_padding(pose.width, pose.height)
    xy = np.nan_to_num((pose.xy[person] + np.array([left, top])) / max(pose.width, pose.height), nan=0.0)
    return xy.astype(np.float32), pose.state[person].astype(np.int64)


def slot_prompts(pose: Pose, slots: int, index: int = 0) -> list[str]:
    """The per-person prompts of the people drawn, in slot order (left to right); "" for a person without
    one and for empty slots."""
    drawn = [pose.prompt(person) for person in people_to_draw(pose, slots, index)]
    return drawn + [""] * (slots - len(drawn))


def people_slots(pose: Pose, slots: int, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(slots, 17, 2) positions and (slots, 17) states of the people drawn, left to right; empty slots
    hold a person with every joint absent."""
    xy = np.zeros((slots, NUM_JOINTS, 2), dtype=np.float32)
    state = np.zeros((slots, NUM_JOINTS), dtype=np.int64)
    for slot, person in enumerate(people_to_draw(pose, slots, index)):
        xy[slot], state[slot] = square_normalized(pose, person)
    return xy, state


def limb_maps(xy: torch.Tensor, state: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """(B, limbs, h, w) Gaussian maps of the distance to each limb segment (0 where a joint is absent)."""
    h, w = size
    ys = (torch.arange(h, device=xy.device, dtype=xy.dtype) + 0.5) / h
    xs = (torch.arange(w, device=xy.device, dtype=xy.dtype) + 0.5) / w
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
    a, b = xy[:, LIMB_INDICES[:, 0]], xy[:, LIMB_INDICES[:, 1]]  # (B, L, 2)
    ab = b - a
    t = ((grid[None, None] - a[:, :, None, None]) * ab[:, :, None, None]).sum(-1)
    t = (t / ab.pow(2).sum(-1).clamp_min(1e-8)[:, :, None, None]).clamp(0, 1)
    nearest = a[:, :, None, None] + t[..., None] * ab[:, :, None, None]
    d2 = (grid[None, None] - nearest).pow(2).sum(-1) * (h * w)  # in map pixels squared (square maps)
    present = (state[:, LIMB_INDICES[:, 0]] > 0) & (state[:, LIMB_INDICES[:, 1]] > 0)
    return torch.exp(-d2 / (2 * sigma**2)) * present[..., None, None]


def joint_maps(xy: torch.Tensor, state: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """(B, 17, h, w) Gaussian heatmaps; occluded joints at half height, absent joints zero."""
    h, w = size
    weight = torch.where(state == 2, 1.0, torch.where(state == 1, 0.5, 0.0)).to(xy.dtype)
    return gaussian_heatmaps(xy * xy.new_tensor([w, h]), weight, h, w, sigma)


class PlacedPoseEncoder(PoseEncoder):
    """Pose conditioning that places the pose: `tokens`, `maps` or `tokens+maps`.

    tokens: one cross-attention token per joint = learned joint embedding + MLP(Fourier features of the
    normalized position) + learned embedding of the state (visible / occluded / absent). An absent joint
    keeps its token, with the absent state and no position term.
    maps: per-joint Gaussian heatmaps (`map_kind: heatmaps`, 17 channels) or limb maps (`skeleton`, 16
    channels) at latent resolution, concatenated to the UNet input.
    several people (`max_people` > 1): one group of 17 tokens per person, left to right, each with a learned
    person embedding, unused groups all absent (so every pose gives the same number of tokens); the maps
    of all people, the maximum over people.
    null pose (classifier-free guidance): a learned token sequence and all-zero maps.
    per-person prompts (`person_prompts`): each person's prompt vector joins its own tokens (`person_tokens`)
    and, in `person_channels` extra map channels, its own body (models/person_text.py); the null pose has
    neither.
    """

    # folders saved by earlier versions hold the parameters of every mode; the unused ones are dropped quietly
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [
        r"^constant_context$", r"^null_context$", r"^joint$", r"^state\.", r"^position\."
    ]  # fmt: skip

    @register_to_config
    def __init__(
        self,
        mode: str = "tokens+maps",
        dim: int = 64,
        bands: int = 8,
        latent_size: int = 16,
        map_kind: str = "heatmaps",
        sigma: float = 1.0,
        null_pose: bool = True,
        max_people: int = 1,
        person_prompts: bool = False,
        person_channels: int = 4,
        person_tokens: bool = True,
    ) -> None:
        super().__init__()
        # ValueErrors: a model folder's config.json is read here, and loading reports a library error as one
        # CheckpointError naming the folder (models/files.READ_ERRORS); training configs are checked before
        if mode not in ("tokens", "maps", "tokens+maps"):
            raise ValueError(f"mode: expected tokens, maps or tokens+maps, got {mode!r}")
        if map_kind not in ("heatmaps", "skeleton"):
            raise ValueError(f"map_kind: expected heatmaps or skeleton, got {map_kind!r}")
        if max_people < 1:
            raise ValueError(f"max_people: expected at least 1, got {max_people}")
        if person_channels < 0:
            raise ValueError(f"person_channels: expected 0 or more, got {person_channels}")
        self.uses_tokens, self.uses_maps = "tokens" in mode, "maps" in mode
        if person_prompts:
            tokens, channels = self.uses_tokens and person_tokens, person_channels if self.uses_maps else 0
            if not tokens and not channels:
                raise ValueError("person_prompts: needs person_tokens or person_channels on a path the mode has")
            self.binding = PersonBinding(dim, tokens, channels)
        # only the parameters this mode uses exist: under DDP every parameter must get a gradient each step
        if self.uses_tokens:
            self.joint = torch.nn.Parameter(torch.randn(NUM_JOINTS, dim) * 0.02)
            self.state = torch.nn.Embedding(3, dim)
            self.position = torch.nn.Sequential(
                torch.nn.Linear(4 * bands, dim), torch.nn.SiLU(), torch.nn.Linear(dim, dim)
            )
            if null_pose:
                self.null_context = torch.nn.Parameter(torch.randn(1, max_people * NUM_JOINTS, dim) * 0.02)
            if max_people > 1:
                self.person = torch.nn.Embedding(max_people, dim)
        else:  # maps only: cross-attention gets one constant token, which is also the null pose's
            self.constant_context = torch.nn.Parameter(torch.randn(1, 1, dim) * 0.02)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.config.mode

    @property
    def takes_person_prompts(self) -> bool:
        return bool(self.config.person_prompts)

    @property
    def person_channels(self) -> int:
        """Map channels of the per-person prompts (after the pose's own)."""
        return self.config.person_channels if self.takes_person_prompts and self.uses_maps else 0

    @property
    def map_channels(self) -> int:  # type: ignore[override]
        if not self.uses_maps:
            return 0
        return (NUM_JOINTS if self.config.map_kind == "heatmaps" else 16) + self.person_channels

    def prepare(self, poses: Sequence[Pose]) -> dict[str, torch.Tensor | list]:
        """(B, max_people, 17, 2) positions and (B, max_people, 17) states (and the slots' prompts)."""
        slots = self.config.max_people
        xy, state = zip(*(people_slots(p, slots, i) for i, p in enumerate(poses)))
        prepared: dict[str, torch.Tensor | list] = {"xy": torch.from_numpy(np.stack(xy)),
                                                    "state": torch.from_numpy(np.stack(state))}  # fmt: skip
        if self.takes_person_prompts:
            prepared["person_prompts"] = [slot_prompts(p, slots, i) for i, p in enumerate(poses)]
        return prepared

    def forward(
        self,
        xy: torch.Tensor,
        state: torch.Tensor,
        latent_size: tuple[int, int] | None = None,
        person_text: torch.Tensor | None = None,
    ) -> PoseConditioning:
        """xy (B, people, 17, 2) and state (B, people, 17) from `prepare` ((B, 17, ...) for one person);
        `person_text` (B, people, dim): each slot's prompt vector (models/person_text.person_vectors), for
        an encoder that takes per-person prompts (without it, neither path carries any person's text)."""
        device = self.device
        xy, state = xy.to(device, torch.float32), state.to(device)
        if xy.dim() == 3:
            xy, state = xy[:, None], state[:, None]
        batch, people = state.shape[:2]
        if self.uses_tokens:
            placed = (state > 0).unsqueeze(-1).to(xy.dtype)
            tokens = self.joint + self.state(state) + placed * self.position(fourier_features(xy, self.config.bands))
            if people > 1:
                tokens = tokens + self.person.weight[:people, None]
            if person_text is not None and self.takes_person_prompts and self.binding.to_tokens is not None:
                tokens = tokens + self.binding.tokens(person_text.to(tokens.dtype))
            context = tokens.reshape(batch, people * NUM_JOINTS, -1)
        else:
            context = self.constant_context.expand(batch, -1, -1)
        maps = None
        if self.uses_maps:
            size = tuple(latent_size or (self.config.latent_size, self.config.latent_size))
            rendered = {self.config.map_kind: self._rendered(self.config.map_kind, xy, state, size)}
            maps = rendered[self.config.map_kind].amax(dim=1)
            if self.person_channels:
                maps = torch.cat([maps, self._person_maps(rendered, xy, state, size, person_text)], dim=1)
        return PoseConditioning(context=context, maps=maps)

    def _rendered(self, kind: str, xy: torch.Tensor, state: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, people, C, h, w): each person's joint heatmaps (`heatmaps`) or limb maps (`skeleton`)."""
        render = joint_maps if kind == "heatmaps" else limb_maps
        return render(xy.flatten(0, 1), state.flatten(0, 1), size, self.config.sigma).unflatten(0, state.shape[:2])

    def _person_maps(self, rendered: dict, xy, state, size, person_text: torch.Tensor | None) -> torch.Tensor:
        """(B, person_channels, h, w): each person's prompt vector painted on its body (zero without text);
        the body needs both kinds of map, of which `rendered` holds the one the pose's own maps are."""
        if person_text is None:
            return xy.new_zeros(state.shape[0], self.person_channels, *size)
        for kind in ("heatmaps", "skeleton"):
            if kind not in rendered:
                rendered[kind] = self._rendered(kind, xy, state, size)
        masks = body_masks(rendered["heatmaps"], rendered["skeleton"])
        return self.binding.maps(person_text.to(xy.dtype), masks)

    def null(self, batch: int, latent_size: tuple[int, int]) -> PoseConditioning:
        if not self.has_null:
            return super().null(batch, latent_size)
        context = (
            self.null_context.expand(batch, -1, -1) if self.uses_tokens else self.constant_context.expand(batch, -1, -1)
        )
        maps = None
        if self.uses_maps:
            maps = torch.zeros(batch, self.map_channels, *latent_size, device=self.device)
        return PoseConditioning(context=context, maps=maps)
