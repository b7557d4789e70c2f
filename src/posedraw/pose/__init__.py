"""Everything about keypoints: the Pose type, formats, transforms, rendering, tokens and metrics.

This package imports no model code; torch is imported only inside the heatmap functions
(`render.gaussian_heatmaps`, `render_heatmaps`).
"""

from posedraw.pose.core import Part, Pose
from posedraw.pose.formats import (
    FORMATS,
    ReadOptions,
    WriteOptions,
    detect_format,
    dump_pose,
    parse_pose,
    read_pose,
    write_pose,
)
from posedraw.pose.metrics import JointScores, oks, pck
from posedraw.pose.render import draw_pose, render_heatmaps, render_skeleton
from posedraw.pose.schema import JOINTS, NUM_JOINTS, PARTS, JointState
from posedraw.pose.tokens import legacy_tokens, pose_from_legacy_tokens
from posedraw.pose.transforms import crop, flip_horizontal, pad, pad_to_square, resize

__all__ = [
    "FORMATS",
    "JOINTS",
    "NUM_JOINTS",
    "PARTS",
    "JointScores",
    "JointState",
    "Part",
    "Pose",
    "ReadOptions",
    "WriteOptions",
    "crop",
    "detect_format",
    "draw_pose",
    "dump_pose",
    "flip_horizontal",
    "legacy_tokens",
    "oks",
    "pad",
    "pad_to_square",
    "parse_pose",
    "pck",
    "pose_from_legacy_tokens",
    "read_pose",
    "render_heatmaps",
    "render_skeleton",
    "resize",
    "write_pose",
]
