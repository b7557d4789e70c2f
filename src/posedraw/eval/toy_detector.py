"""A small heatmap CNN that finds the 17 joints of synthetic toy figures, for judging generated toy images.

Trained on toy renders made on the fly (endless, seeded data), it predicts a (17, 16, 16) heatmap for a
64 x 64 image; a joint's position is the heatmap peak refined by a local soft-argmax, and a joint whose
peak stays below `presence` is absent. Its accuracy on held-out renders is measured and asserted by the
tests, so its verdicts on generated images can be trusted for figures of this kind (not for photos: use
MediaPipe there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posedraw.data.images import to_tensor
from posedraw.data.toy import make_toy_sample
from posedraw.pose import NUM_JOINTS, JointState, Pose

WEIGHTS = Path(__file__).parent / "weights" / "toy_pose_detector.safetensors"
INPUT = 64
STRIDE = 4
HEATMAP = INPUT // STRIDE
SIGMA = 1.0


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.SiLU(),
    )


class ToyPoseDetector(nn.Module):
    """64x64 RGB in [-1, 1] -> (17, 16, 16) heatmap logits."""

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _block(3, width // 2, 2), _block(width // 2, width, 2), _block(width, width),
            _block(width, width, dilation=2), _block(width, width, dilation=4), _block(width, width, dilation=2),
            _block(width, width),
        )  # fmt: skip
        self.head = nn.Conv2d(width, NUM_JOINTS, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != INPUT or images.shape[-2] != INPUT:
            images = F.interpolate(images, size=(INPUT, INPUT), mode="bilinear", align_corners=False, antialias=True)
        return self.head(self.body(images))


def target_heatmaps(poses: list[Pose]) -> torch.Tensor:
    """(B, 17, 16, 16) Gaussian targets in heatmap pixels; absent joints all zero."""
    from posedraw.pose import render_heatmaps

    return torch.stack([render_heatmaps(p, HEATMAP, HEATMAP, sigma=SIGMA) for p in poses])


def decode(heatmaps: torch.Tensor, width: float, height: float, presence: float = 0.3) -> list[Pose]:
    """Poses from heatmap logits: the peak refined by a soft-argmax over its 3x3 neighbourhood; a joint is
    absent when its peak probability is below `presence`."""
    probs = torch.sigmoid(heatmaps.float())
    b, j, h, w = probs.shape
    peak, index = probs.flatten(2).max(-1)
    windows = F.unfold(F.pad(probs.reshape(b * j, 1, h, w), (1, 1, 1, 1)), 3).reshape(b, j, 9, h * w)
    window = windows.gather(-1, index[..., None, None].expand(b, j, 9, 1))[..., 0]  # (b, j, 9)
    weight = window / window.sum(-1, keepdim=True).clamp_min(1e-8)
    offsets = torch.tensor([-1.0, 0.0, 1.0])
    dy, dx = (t.flatten() for t in torch.meshgrid(offsets, offsets, indexing="ij"))
    y = (index // w).float() + (weight * dy).sum(-1) + 0.5
    x = (index % w).float() + (weight * dx).sum(-1) + 0.5
    poses = []
    for bi in range(b):
        xy = torch.stack([x[bi] * width / w, y[bi] * height / h], -1).numpy()
        state = np.where(peak[bi].numpy() >= presence, JointState.VISIBLE, JointState.ABSENT)
        poses.append(Pose.single(xy, width, height, state=state, confidence=peak[bi].numpy()))
    return poses


@dataclass
class TrainReport:
    steps: int
    final_loss: float


def train_detector(
    steps: int = 2000, batch: int = 32, seed: int = 0, lr: float = 2e-3
) -> tuple[ToyPoseDetector, TrainReport]:
    """Train on fresh toy renders (seeds from `seed * 10**7` up; held-out evaluation uses other seeds)."""
    torch.manual_seed(seed)
    model = ToyPoseDetector()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    start = seed * 10**7
    loss = torch.tensor(0.0)
    for step in range(steps):
        samples = [make_toy_sample(start + step * batch + i, INPUT) for i in range(batch)]
        images = torch.stack([to_tensor(s.image) for s in samples])
        targets = target_heatmaps([s.pose for s in samples])
        logits = model(images)
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=torch.tensor(20.0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval(), TrainReport(steps, float(loss.detach()))


def save_detector(model: ToyPoseDetector, path: Path = WEIGHTS) -> None:
    from safetensors.torch import save_file

    from posedraw.io import atomic_path

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))


def load_detector(path: Path = WEIGHTS) -> ToyPoseDetector:
    from safetensors.torch import load_file

    from posedraw.errors import CheckpointError

    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no toy pose detector weights (train them: posedraw train pose-detector)")
    model = ToyPoseDetector()
    model.load_state_dict(load_file(str(path)))
    return model.eval()


@torch.no_grad()
def detect_toy_poses(model: ToyPoseDetector, images: torch.Tensor, width: float, height: float) -> list[Pose]:
    """Poses of toy figures in images (B, 3, H, W) in [-1, 1], in a width x height canvas."""
    return decode(model(images), width, height)


#: the share of the crop a person's joints span when a scene is cut into one crop per person: framed as the
#: detector's single-figure training renders are, so each person is seen at the size it was trained on (a
#: looser crop shrinks the figure, a tighter one cuts its joints off); chosen on true renders of held-out scenes
JOINT_SPAN = 0.9


def person_box(target: Pose, person: int) -> tuple[float, float, float]:
    """(centre x, centre y, side) of a square around one person's present joints, framed like training."""
    points = target.xy[person][target.present[person]]
    low, high = points.min(axis=0), points.max(axis=0)
    side = max(float((high - low).max()) / JOINT_SPAN, 8.0)
    centre = (low + high) / 2
    return float(centre[0]), float(centre[1]), side


def crop(image: torch.Tensor, box: tuple[float, float, float]) -> torch.Tensor:
    """A (3, 64, 64) crop of `image` (3, H, W) around box; outside the image the border colour repeats."""
    _, height, width = image.shape
    cx, cy, side = box
    theta = torch.tensor([[[side / width, 0.0, 2 * cx / width - 1], [0.0, side / height, 2 * cy / height - 1]]])
    grid = F.affine_grid(theta, [1, 3, INPUT, INPUT], align_corners=False)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


@torch.no_grad()
def detect_toy_people(model: ToyPoseDetector, image: torch.Tensor, target: Pose) -> Pose:
    """One detected person per person of `target` (in the image's frame): each found in a crop around where
    that person should be, so a detected person belongs to the figure at that place."""
    _, height, width = image.shape
    boxes = [person_box(target, p) if target.present[p].any() else (width / 2, height / 2, max(width, height))
             for p in range(target.num_people)]  # fmt: skip
    found = detect_toy_poses(model, torch.stack([crop(image, b) for b in boxes]), INPUT, INPUT)
    people = []
    for pose, (cx, cy, side) in zip(found, boxes):
        xy = pose.xy * (side / INPUT) + np.array([cx - side / 2, cy - side / 2])
        people.append(Pose(xy, pose.state, width, height, pose.confidence))
    return Pose.stack(people)
