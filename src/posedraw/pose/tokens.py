"""The original system's legacy pose tokens: each joint as one cell of a 32 x 32 grid over 512 x 512.

token = row_bin + 32 * col_bin, where row is the vertical coordinate (the first value of the original
keypoint files) and bins are 16 px wide. Positions outside the canvas are clamped into the border cells,
as the original does. The original data has no absent joints; here an absent joint is clamped like a
point at the origin (token 0), which is what a missing value of 0 became in the original pipeline.
"""

from __future__ import annotations

import numpy as np

from posedraw.errors import PoseError
from posedraw.pose.core import Pose
from posedraw.pose.schema import NUM_JOINTS, JointState
from posedraw.pose.transforms import square_padding

GRID = 32
CANVAS = 512.0
CELL = CANVAS / GRID
VOCAB_SIZE = GRID * GRID


def _to_legacy_canvas(pose: Pose) -> np.ndarray:
    """(P, 17, 2) positions in the 512 square the tokens live in (padding a non-square canvas centred).

    Joints outside the canvas keep their positions, so they clamp instead of vanishing.
    """
    left, top, _, _ = square_padding(pose.width, pose.height)
    scale = CANVAS / max(pose.width, pose.height)
    return (pose.xy + np.array([left, top])) * scale


def legacy_tokens(pose: Pose) -> np.ndarray:
    """(P, 17) int64 grid tokens in [0, 1024)."""
    xy = np.nan_to_num(_to_legacy_canvas(pose), nan=0.0)
    col_bin = np.clip(np.floor(xy[..., 0] / CELL), 0, GRID - 1).astype(np.int64)
    row_bin = np.clip(np.floor(xy[..., 1] / CELL), 0, GRID - 1).astype(np.int64)
    return row_bin + GRID * col_bin


def pose_from_legacy_tokens(tokens: np.ndarray) -> Pose:
    """The approximate pose a token array encodes: each joint at the centre of its cell, in 512 x 512."""
    tokens = np.asarray(tokens)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[1] != NUM_JOINTS:
        raise PoseError(f"tokens: expected shape ({NUM_JOINTS},) or (people, {NUM_JOINTS}), got {tokens.shape}")
    if not np.issubdtype(tokens.dtype, np.number) or (tokens != np.round(tokens)).any():
        raise PoseError("tokens: expected whole numbers")
    if (tokens < 0).any() or (tokens >= VOCAB_SIZE).any():
        raise PoseError(f"tokens: expected values in 0..{VOCAB_SIZE - 1}")
    tokens = tokens.astype(np.int64)
    row_bin, col_bin = tokens % GRID, tokens // GRID
    xy = np.stack([(col_bin + 0.5) * CELL, (row_bin + 0.5) * CELL], axis=-1)
    return Pose(xy, np.full(tokens.shape, JointState.VISIBLE), CANVAS, CANVAS)
