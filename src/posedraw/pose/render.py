"""Drawing poses: an OpenPose-style skeleton image, a pose over a picture, and per-joint heatmaps.

Limb colours follow the side of the body (the person's left in warm hues, right in cool hues, centre in
magenta) so a left/right swap is visible at a glance. Occluded joints and their limbs are drawn dimmed;
absent joints are not drawn. Parts are drawn as ControlNet's openpose_full draws them: each hand's bones
finger by finger in a rainbow of distinct hues with small blue joints, the face as small light dots,
and foot bones in the side colours of the body. The neck and mid-hip are not drawn.
"""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from posedraw.pose.core import Part, Pose
from posedraw.pose.schema import (
    FOOT_BONES,
    FOOT_POINTS,
    HAND_BONES,
    JOINT_INDEX,
    JOINTS,
    LIMB_INDICES,
    JointState,
    side_of,
)

if TYPE_CHECKING:
    import torch

_HUE_RANGE = {"left": (0.0, 0.16), "right": (0.33, 0.66), "center": (0.83, 0.83)}


def _limb_sides() -> list[str]:
    sides = []
    for a, b in LIMB_INDICES:
        side_a, side_b = side_of(JOINTS[a]), side_of(JOINTS[b])
        sides.append(side_a if side_a == side_b else "center")
    return sides


def _colours(sides: list[str]) -> list[tuple[int, int, int]]:
    """Distinct hues inside each side's band, in drawing order."""
    colours = []
    for i, side in enumerate(sides):
        same = [j for j, s in enumerate(sides) if s == side]
        low, high = _HUE_RANGE[side]
        hue = low + (high - low) * same.index(i) / max(1, len(same) - 1)
        r, g, b = colorsys.hsv_to_rgb(hue, 1.0, 1.0)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


LIMB_COLOURS = _colours(_limb_sides())
JOINT_COLOURS = _colours([side_of(j) for j in JOINTS])
FOOT_COLOURS = _colours([side_of(toe) for _, toe in FOOT_BONES])


def _rainbow(count: int) -> list[tuple[int, int, int]]:
    colours = []
    for i in range(count):
        r, g, b = colorsys.hsv_to_rgb(i / count, 1.0, 1.0)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


HAND_COLOURS = _rainbow(len(HAND_BONES))  # one hue per bone: fingers in distinct colours, as ControlNet draws them
HAND_JOINT_COLOUR = (0, 0, 255)
FACE_COLOUR = (255, 255, 255)


def line_width(width: int, height: int) -> int:
    """Limb thickness scaled to the image: about 1% of the longer side, at least 1 px."""
    return max(1, round(0.01 * max(width, height)))


def _dim(colour: tuple[int, int, int], state: int) -> tuple[int, int, int]:
    return colour if state == JointState.VISIBLE else tuple(c // 2 for c in colour)  # type: ignore[return-value]


def _bone(draw: ImageDraw.ImageDraw, ends: tuple[np.ndarray, np.ndarray], states: tuple[int, int],
          colour: tuple[int, int, int], width: int) -> None:  # fmt: skip
    if states[0] and states[1]:
        draw.line([tuple(ends[0]), tuple(ends[1])], fill=_dim(colour, min(states)), width=width)


def _dot(draw: ImageDraw.ImageDraw, point: np.ndarray, state: int, colour: tuple[int, int, int], radius: float) -> None:
    if state:
        x, y = point
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=_dim(colour, state))


def _draw_body(draw: ImageDraw.ImageDraw, xy: np.ndarray, state: np.ndarray, thickness: int) -> None:
    radius = max(1.0, 1.2 * thickness)
    for (a, b), colour in zip(LIMB_INDICES, LIMB_COLOURS):
        _bone(draw, (xy[a], xy[b]), (int(state[a]), int(state[b])), colour, thickness)
    for j, colour in enumerate(JOINT_COLOURS):
        _dot(draw, xy[j], int(state[j]), colour, radius)


def _draw_feet(draw: ImageDraw.ImageDraw, body: tuple[np.ndarray, np.ndarray], feet: tuple[np.ndarray, np.ndarray],
               thickness: int) -> None:  # fmt: skip
    def point(name: str) -> tuple[np.ndarray, int]:
        """A foot bone's end: a body ankle or a foot point."""
        (xy, state), k = (body, JOINT_INDEX[name]) if name in JOINT_INDEX else (feet, FOOT_POINTS.index(name))
        return xy[k], int(state[k])

    for (a, b), colour in zip(FOOT_BONES, FOOT_COLOURS):
        (xy_a, state_a), (xy_b, state_b) = point(a), point(b)
        _bone(draw, (xy_a, xy_b), (state_a, state_b), colour, thickness)


def _draw_hand(draw: ImageDraw.ImageDraw, xy: np.ndarray, state: np.ndarray, thickness: int) -> None:
    width = max(1, round(thickness / 2))
    for (a, b), colour in zip(HAND_BONES, HAND_COLOURS):
        _bone(draw, (xy[a], xy[b]), (int(state[a]), int(state[b])), colour, width)
    for k in range(len(state)):
        _dot(draw, xy[k], int(state[k]), HAND_JOINT_COLOUR, max(1.0, 0.6 * width))


def _draw_parts(draw: ImageDraw.ImageDraw, pose: Pose, p: int, scale: np.ndarray, thickness: int) -> None:
    def scaled(part: Part) -> tuple[np.ndarray, np.ndarray]:
        return part.xy[p] * scale, part.state[p]

    if "feet" in pose.parts:
        _draw_feet(draw, (pose.xy[p] * scale, pose.state[p]), scaled(pose.parts["feet"]), thickness)
    for name in ("left_hand", "right_hand"):
        if name in pose.parts:
            _draw_hand(draw, *scaled(pose.parts[name]), thickness)
    if "face" in pose.parts:
        xy, state = scaled(pose.parts["face"])
        for k in range(len(state)):
            _dot(draw, xy[k], int(state[k]), FACE_COLOUR, max(1.0, 0.4 * thickness))


def draw_pose(image: Image.Image, pose: Pose) -> Image.Image:
    """A copy of `image` with the pose drawn on it; the pose canvas is scaled to the image size."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    scale = np.array([out.width / pose.width, out.height / pose.height])
    thickness = line_width(out.width, out.height)
    for p in range(pose.num_people):
        _draw_body(draw, pose.xy[p] * scale, pose.state[p], thickness)
        _draw_parts(draw, pose, p, scale, thickness)
    return out


def output_size(pose: Pose, long_side: int | None) -> tuple[int, int]:
    """Image size for a pose canvas: the canvas itself, or scaled so its longer side is `long_side`."""
    if long_side is None:
        return max(1, round(pose.width)), max(1, round(pose.height))
    factor = long_side / max(pose.width, pose.height)
    return max(1, round(pose.width * factor)), max(1, round(pose.height * factor))


def render_skeleton(pose: Pose, long_side: int | None = None) -> Image.Image:
    """The skeleton on black, OpenPose style, at the canvas size or with the longer side `long_side`."""
    return draw_pose(Image.new("RGB", output_size(pose, long_side)), pose)


def gaussian_heatmaps(
    centres: torch.Tensor, weights: torch.Tensor, height: int, width: int, sigma: float
) -> torch.Tensor:
    """(..., J, height, width) maps `weight * exp(-d^2 / (2 sigma^2))`, d from each pixel's centre to the
    joint's centre in map pixels (`centres` (..., J, 2) as x, y; `weights` (..., J)).

    The one Gaussian every heatmap of the project is drawn with (the detector's targets, the pose encoders'
    maps), so a joint sits on the same map pixel wherever a map is made. Runs on the centres' device.
    """
    import torch

    ys = torch.arange(height, device=centres.device, dtype=centres.dtype) + 0.5
    xs = torch.arange(width, device=centres.device, dtype=centres.dtype) + 0.5
    dx2 = (xs - centres[..., 0, None, None]) ** 2  # (..., J, 1, W)
    dy2 = (ys[:, None] - centres[..., 1, None, None]) ** 2  # (..., J, H, 1)
    return torch.exp(-(dx2 + dy2) / (2.0 * sigma**2)) * weights[..., None, None]


def render_heatmaps(pose: Pose, height: int, width: int, sigma: float | None = None) -> torch.Tensor:
    """(17, height, width) float32 Gaussian heatmaps, peak 1 at each present joint, max over people.

    The pose canvas maps onto the whole map; `sigma` is in map pixels (default 2% of the longer side,
    at least 0.5). Absent joints give all-zero maps.
    """
    import torch

    sigma = sigma if sigma is not None else max(0.5, 0.02 * max(height, width))
    scale = torch.tensor([width / pose.width, height / pose.height], dtype=torch.float64)
    centres = torch.from_numpy(np.nan_to_num(pose.xy)) * scale  # (P, 17, 2) in map pixels
    present = torch.from_numpy(pose.present).to(torch.float64)
    return gaussian_heatmaps(centres, present, height, width, sigma).amax(dim=0).to(torch.float32)
