"""Pose encoders: poses in, UNet conditioning out (cross-attention tokens and/or spatial maps).

Every encoder has two steps. `prepare` turns Pose objects into tensors on the CPU (numpy work, run in data
loaders during training). `forward` turns those tensors into a `PoseConditioning` on the model's device.
The pipeline only talks to this interface, so new encoders drop in without touching it. An encoder trained
with pose dropout also gives a `null` conditioning for classifier-free guidance.

`legacy` reproduces the original system: the 17 grid tokens of the pose as one (1, 17) float token, which
cross-attention can only use as a global bias (one key: softmax weight 1 everywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from posedraw.errors import PoseError
from posedraw.pose import NUM_JOINTS, Pose, legacy_tokens


@dataclass
class PoseConditioning:
    """What the UNet receives: `context` (B, tokens, dim) for cross-attention, `maps` (B, C, h, w) to concat."""

    context: torch.Tensor | None = None
    maps: torch.Tensor | None = None

    @staticmethod
    def cat(parts: Sequence[PoseConditioning]) -> PoseConditioning:
        def join(items: list[torch.Tensor | None]) -> torch.Tensor | None:
            return None if items[0] is None else torch.cat(items)  # type: ignore[arg-type]

        return PoseConditioning(join([p.context for p in parts]), join([p.maps for p in parts]))


def check_drawable(poses: Sequence[Pose]) -> None:
    """A pose with no visible or occluded joint cannot steer a drawing: refuse it early."""
    for i, pose in enumerate(poses):
        if pose.num_people == 0 or not pose.present[0].any():
            raise PoseError(f"pose {i}: expected at least one joint with a position, the pose has none")


class PoseEncoder(ModelMixin, ConfigMixin):
    """Base class: subclasses set `kind` and implement `prepare`, `forward` and (if trained for it) `null`."""

    kind: str = "base"
    #: extra UNet input channels the encoder's maps add (0 for token-only encoders)
    map_channels: int = 0

    @property
    def has_null(self) -> bool:
        return bool(getattr(self.config, "null_pose", False))

    def prepare(self, poses: Sequence[Pose]) -> dict[str, torch.Tensor]:
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
        check_drawable(poses)
        tokens = np.stack([legacy_tokens(p.person(0))[0] for p in poses])
        return {"tokens": torch.from_numpy(tokens)}

    def forward(self, tokens: torch.Tensor, latent_size: tuple[int, int] | None = None) -> PoseConditioning:
        context = tokens.to(self.scale.device, torch.float32)[:, None, :] * self.scale
        return PoseConditioning(context=context)
