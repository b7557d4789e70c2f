"""Building a training set from real images and keypoint files (Danbooru and the original system's release).

Inputs are matched by id (the file name without extension): an image folder (recursive; Danbooru2021's
`512px/0xxx/ID.jpg` and `original/0xxx/ID.ext` layouts included), a keypoint folder in any pose format
(the original release: one `{joint: [row, col]}` JSON per id in a 512 canvas), and optional Danbooru
metadata (JSON lines with `id`, `tag_string` or `tags`, `rating`). Each image is padded to a square and
resized, with its keypoints transformed identically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from posedraw.data.clip_filter import ClipFilter
from posedraw.data.filters import (
    FilterConfig,
    LimbStatistics,
    metadata_problem,
    skeleton_problem,
    uniform_border_fraction,
)
from posedraw.data.images import IMAGE_SUFFIXES, is_readable
from posedraw.data.shards import Sample
from posedraw.data.toy import manifest_row
from posedraw.errors import DataError, PosedrawError
from posedraw.pose import Pose, pad_to_square, read_pose, resize
from posedraw.pose.transforms import square_padding


@dataclass(frozen=True)
class Item:
    id: str
    image: str
    keypoints: str | None
    tags: tuple[str, ...] = ()
    rating: str | None = None
    duplicate: bool = False

    def input_files(self) -> list[Path]:
        """The files this input is read from: their size and time go into its shard's fingerprint."""
        return [Path(path) for path in (self.image, self.keypoints) if path]


def _tags(entry: dict) -> tuple[str, ...]:
    if isinstance(entry.get("tag_string"), str):
        return tuple(entry["tag_string"].split())
    tags = entry.get("tags", [])
    return tuple(t["name"] if isinstance(t, dict) else str(t) for t in tags) if isinstance(tags, list) else ()


def read_metadata(path: Path | None) -> dict[str, tuple[tuple[str, ...], str | None]]:
    """id -> (tags, rating) from Danbooru metadata JSON lines."""
    if path is None:
        return {}
    table = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    table[str(entry["id"])] = (_tags(entry), entry.get("rating"))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataError(f"{path}: line {number}: expected a JSON object with an 'id'") from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such metadata file") from None
    return table


def find_inputs(images: Path, keypoints: Path, metadata: Path | None = None) -> tuple[list[Item], int]:
    """The items to build, sorted by id, and the number of keypoint files that have no image."""
    for folder, what in ((images, "image"), (keypoints, "keypoint")):
        if not folder.is_dir():
            raise DataError(f"{folder}: no such {what} folder")
    poses = {p.stem: str(p) for p in sorted(keypoints.rglob("*.json"))}
    meta = read_metadata(metadata)
    items, seen = [], set()
    for path in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        key = path.stem
        tags, rating = meta.get(key, ((), None))
        duplicate = key in seen
        seen.add(key)
        item_id = f"{key}@{path.relative_to(images)}" if duplicate else key
        items.append(Item(item_id, str(path), poses.get(key), tags, rating, duplicate))
    items.sort(key=lambda i: i.id)
    return items, len(set(poses) - seen)


def learn_statistics(items: list[Item]) -> LimbStatistics:
    def poses():
        for item in items:
            if item.keypoints:
                try:
                    yield read_pose(item.keypoints)
                except PosedrawError:
                    continue

    return LimbStatistics.learn(poses())


def to_square(image: Image.Image, pose: Pose) -> tuple[Image.Image, Pose]:
    """Pad image and pose to a square. A square pose canvas on a non-square image is taken to be the padded
    square frame (the original keypoints refer to the padded 512px images)."""
    side = max(image.size)
    left, top, right, bottom = (int(v) for v in square_padding(image.width, image.height))
    padded = ImageOps.expand(image, (left, top, right, bottom), fill=(0, 0, 0))
    if pose.canvas == (float(image.width), float(image.height)):
        return padded, pad_to_square(pose)
    if pose.width == pose.height:
        return padded, resize(pose, side, side)
    raise PosedrawError(
        f"keypoint canvas {pose.width:g}x{pose.height:g} does not fit the image {image.width}x{image.height}"
    )


@dataclass(frozen=True)
class RealMaker:
    """Turns one Item into a sample or a skip reason (picklable, for parallel shard building)."""

    size: int
    config: FilterConfig
    stats: LimbStatistics
    image_format: str = "jpg"
    clip: ClipFilter | None = None

    def __call__(self, item: Item) -> tuple[Sample | None, dict]:
        try:
            sample, pose = self._make(item)
        except _Skip as skip:  # the row describes the pose when it was read before the skip
            row = manifest_row(item.id, item.image, skip.pose or _EMPTY, list(item.tags), "skipped", str(skip))
            return None, row if skip.pose is not None else {**row, "pose": None}
        row = manifest_row(item.id, item.image, pose, list(item.tags))
        if "clip_score" in sample.meta:
            row["clip_score"] = sample.meta["clip_score"]
        return sample, row

    def _make(self, item: Item) -> tuple[Sample, Pose]:
        config = self.config
        if item.duplicate:
            raise _Skip("duplicate image id")
        problem = metadata_problem(list(item.tags), item.rating, config)
        if problem:
            raise _Skip(problem)
        if item.keypoints is None:
            raise _Skip("no keypoints")
        try:
            pose = read_pose(item.keypoints)  # every person: multi-person models draw them all
        except PosedrawError as exc:
            raise _Skip(f"bad keypoints ({str(exc).split(': ', 1)[-1][:80]})") from None
        if pose.num_people == 0:
            raise _Skip("no person in the keypoints")
        if not is_readable(Path(item.image)):
            raise _Skip("unreadable image")
        with Image.open(item.image) as opened:
            image = opened.convert("RGB")
        if min(image.size) < config.min_image_side:
            raise _Skip("image too small")
        if config.check_borders and uniform_border_fraction(image) > config.max_border:
            raise _Skip("large uniform borders")
        if config.check_skeleton:
            problem = skeleton_problem(pose, self.stats, config)
            if problem:
                raise _Skip(problem, pose)
        try:
            image, pose = to_square(image, pose)
        except PosedrawError as exc:
            raise _Skip(str(exc)) from None
        image = image.resize((self.size, self.size), Image.Resampling.BICUBIC, reducing_gap=3.0)
        pose = resize(pose, self.size, self.size)
        visible = int(pose.visible.sum(axis=1).max())  # the most complete person decides
        if visible < config.min_visible_joints:
            raise _Skip(f"too few visible joints ({visible} < {config.min_visible_joints})", pose)
        meta = {"source": item.image, "tags": list(item.tags), "rating": item.rating}
        if self.clip is not None:
            score = self.clip.score(image)
            if score < self.clip.threshold:
                raise _Skip(f"CLIP score {score:.3f} below {self.clip.threshold:g}")
            meta["clip_score"] = round(score, 4)
        return Sample(item.id, image, pose, meta), pose


class _Skip(Exception):
    """An input that does not make it into the dataset; the message is the manifest's reason, `pose` the
    pose as far as it was read (so that the row's joint counts agree with the reason)."""

    def __init__(self, reason: str, pose: Pose | None = None) -> None:
        super().__init__(reason)
        self.pose = pose


_EMPTY = Pose.single([[0.0, 0.0]] * 17, 1, 1, state=[0] * 17)
