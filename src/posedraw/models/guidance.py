"""Classifier-free guidance with two conditions, pose and text, in one batched forward.

    e = e(0, 0) + s_pose * (e(p, 0) - e(0, 0)) + s_text * (e(p, t) - e(p, 0))

`0` is the null pose or no text (a negative prompt takes the place of no text). Only the predictions a
setting needs are computed: with both scales 1 only e(p, t); with pose scale 1, e(0, 0) drops out; a
model without text has no text term. `GuidanceScales` says which predictions to make and splits them; the
composition itself is `guided` (models/diffusion_math.py), the same for the diffusion model (on noise
predictions) and the code transformer (on logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posedraw.models.diffusion_math import guided

Branch = tuple[bool, bool]  # (with the pose, with the prompt)


@dataclass(frozen=True)
class GuidanceScales:
    pose: float = 1.0
    text: float = 1.0

    def branches(self, with_text: bool) -> list[Branch]:
        """The (pose, text) conditions to predict, in batch order."""
        if not with_text:
            return [(True, False)] if self.pose == 1.0 else [(False, False), (True, False)]
        if self.pose == 1.0 and self.text == 1.0:
            return [(True, True)]
        if self.pose == 1.0:
            return [(True, False), (True, True)]
        return [(False, False), (True, False), (True, True)]

    def combine(self, outputs: torch.Tensor, branches: list[Branch]) -> torch.Tensor:
        """The guided prediction from `outputs` stacked in `branches` order along the batch."""
        parts = dict(zip(branches, outputs.chunk(len(branches))))
        if len(parts) == 1:
            return outputs
        return guided(parts[(True, False)], parts.get((False, False)), parts.get((True, True)), self.pose, self.text)


__all__ = ["Branch", "GuidanceScales"]
