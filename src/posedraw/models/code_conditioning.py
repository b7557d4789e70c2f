"""The code transformer's pose encoder: a pose prefix, and pose maps added along the codes.

Prefix: 17 token ids, one per joint, after the code ids in GPT-2's vocabulary (see models/transformer.py):
the joint's cell of a `pose_grid` x `pose_grid` grid over the pose padded to a square, an "absent" id, or
the null pose's id (pose dropout; classifier-free guidance).

Maps (`maps: true`): the pose's joint heatmaps and limb maps at the code grid's resolution (33 values per
code cell), projected to the transformer's width and added to the input embedding of the position that
predicts that code (the last prefix token predicts code 0, code i predicts code i + 1). GPT-2 then knows,
for every code it draws, which joints and limbs pass through its cell: the spatial conditioning the
diffusion model gets from its maps, where a prefix alone leaves the model to learn geometry from 17 ids.
The null pose has the null prefix and all-zero maps. With `maps: false` the prefix is the whole pose
conditioning, as in the original system (and in folders that predate the maps).

Tags (`max_tags` > 0): the prompt's known tags come first, as `max_tags` ids after the null pose's id in
the vocabulary (sorted, then a "no tag" id), then the 17 pose ids. No tag at all is the null text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from posedraw.errors import PosedrawError
from posedraw.models.conditioning import joint_maps, limb_maps, people_to_draw, square_normalized
from posedraw.models.text import TextPrompt, prompt_tags
from posedraw.pose import NUM_JOINTS, Pose
from posedraw.pose.schema import LIMB_INDICES

#: channels of the pose maps: one heatmap per joint, one map per limb
MAP_CHANNELS = NUM_JOINTS + len(LIMB_INDICES)
#: the pose prefix's length (a model with tags has its `max_tags` tag ids before it)
PREFIX = NUM_JOINTS


class CodePoseEncoder(ModelMixin, ConfigMixin):
    """Poses (and prompts) -> prefix ids (B, max_tags + 17) and pose maps (B, grid * grid, width)."""

    @register_to_config
    def __init__(
        self,
        num_codes: int,
        grid: int,
        pose_grid: int = 16,
        width: int = 128,
        maps: bool = True,
        sigma: float = 1.0,
        null_pose: bool = True,
        tags: Sequence[str] = (),
        max_tags: int = 0,
    ) -> None:
        super().__init__()
        self.tag_ids = {tag: self.null_token + 1 + i for i, tag in enumerate(tags)}
        if maps:
            self.project = torch.nn.Linear(MAP_CHANNELS, width)
        else:  # a component needs a tensor to have a device and to save and load like the others
            self.register_buffer("unused", torch.zeros(()))

    @property
    def absent_token(self) -> int:
        return self.config.num_codes + self.config.pose_grid**2

    @property
    def null_token(self) -> int:
        return self.absent_token + 1

    @property
    def no_tag_token(self) -> int:
        return self.null_token + 1 + len(self.config.tags)

    @property
    def prefix_length(self) -> int:
        """Tag ids and pose ids before the codes; its last position predicts the first code."""
        return self.config.max_tags + PREFIX

    @property
    def takes_text(self) -> bool:
        return self.config.max_tags > 0

    def unknown(self, prompts: Sequence[TextPrompt]) -> list[str]:
        """Tags of the prompts this model never learned (reported once, then ignored)."""
        return list(dict.fromkeys(t for p in prompts for t in prompt_tags(p) if t not in self.tag_ids))

    def text_prefix(self, prompts: Sequence[TextPrompt]) -> torch.Tensor:
        """(B, max_tags) ids of each prompt's known tags, sorted (order-free), then "no tag"."""
        rows = torch.full((len(prompts), self.config.max_tags), self.no_tag_token, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            known = sorted({self.tag_ids[t] for t in prompt_tags(prompt) if t in self.tag_ids})[: self.config.max_tags]
            rows[row, : len(known)] = torch.tensor(known, dtype=torch.long)
        return rows

    def check(self, poses: Sequence[Pose]) -> list[int]:
        """The person of each pose (one person only: the transformer draws one figure)."""
        return [people_to_draw(p, 1, i, "the code transformer")[0] for i, p in enumerate(poses)]

    def prefix(self, poses: Sequence[Pose], prompts: Sequence[TextPrompt] | None = None) -> torch.Tensor:
        """(B, max_tags + 17) prefix ids: the prompts' tags (none: "no tag"), then the pose."""
        pose = self.pose_prefix(poses)
        if not self.takes_text:
            return pose
        return torch.cat([self.text_prefix(prompts or [""] * len(poses)), pose], dim=1)

    def pose_prefix(self, poses: Sequence[Pose]) -> torch.Tensor:
        """(B, 17) pose ids: each joint's cell of the pose padded to a square (as images are), or absent."""
        return self.prepare(poses)["prefix"]

    def prepare(self, poses: Sequence[Pose]) -> dict[str, torch.Tensor]:
        """The host's part of the pose conditioning: prefix ids (B, 17), and the joints in [0, 1] of the
        square (B, 17, 2) with their states (B, 17) that `render_maps` turns into maps on the device."""
        xy, state = map(np.stack, zip(*(square_normalized(p, person) for p, person in zip(poses, self.check(poses)))))
        cells = np.clip((xy * self.config.pose_grid).astype(np.int64), 0, self.config.pose_grid - 1)
        ids = self.config.num_codes + cells[..., 1] * self.config.pose_grid + cells[..., 0]
        prefix = torch.from_numpy(np.where(state > 0, ids, self.absent_token))
        return {"prefix": prefix, "xy": torch.from_numpy(xy), "state": torch.from_numpy(state)}

    def null_prefix(self, batch: int) -> torch.Tensor:
        """(B, 17) ids of the null pose."""
        return torch.full((batch, PREFIX), self.null_token, dtype=torch.long)

    def maps(self, poses: Sequence[Pose]) -> torch.Tensor | None:
        """(B, grid * grid, 33) heatmaps and limb maps per code cell, in raster order (None without maps)."""
        if not self.config.maps:
            return None
        prepared = self.prepare(poses)
        return self.render_maps(prepared["xy"], prepared["state"])

    def render_maps(self, xy: torch.Tensor, state: torch.Tensor) -> torch.Tensor | None:
        """The maps of `prepare`'s joints (B, 17, 2) and states (B, 17), on their device."""
        if not self.config.maps:
            return None
        size, sigma = (self.config.grid, self.config.grid), self.config.sigma
        both = torch.cat([joint_maps(xy, state, size, sigma), limb_maps(xy, state, size, sigma)], dim=1)
        return both.flatten(2).transpose(1, 2)

    def null_maps(self, batch: int) -> torch.Tensor | None:
        if not self.config.maps:
            return None
        return torch.zeros(batch, self.config.grid**2, MAP_CHANNELS)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, n, 33) maps -> (B, n, width) vectors added to the input embeddings."""
        return self.project(maps.to(self.device, self.project.weight.dtype))

    def check_guidance(self, guidance: float) -> None:
        if guidance != 1.0 and not self.config.null_pose:
            raise PosedrawError("--guidance: this transformer was trained without pose dropout (no null pose); use 1")


def placed_maps(pose_maps: torch.Tensor | None, length: int, prefix: int = PREFIX) -> torch.Tensor | None:
    """The projected pose maps (B, n, width) placed on a sequence of `length` positions: map k at the position
    that predicts code k (prefix - 1 + k), zeros elsewhere; None without maps. Added to the GPT's input
    embeddings (`CodeGPT.forward` in models/transformer.py)."""
    if pose_maps is None:
        return None
    n = min(pose_maps.shape[1], length - (prefix - 1))
    return F.pad(pose_maps[:, :n], (0, 0, prefix - 1, length - (prefix - 1) - n))


__all__ = ["MAP_CHANNELS", "PREFIX", "CodePoseEncoder", "placed_maps"]
