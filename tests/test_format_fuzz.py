"""Fuzzing every pose reader with thousands of malformed documents: only PoseFormatError may come out."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import numpy as np
import pytest

from posedraw.errors import PoseFormatError
from posedraw.pose import FORMATS, Part, Pose, ReadOptions, dump_pose, parse_pose, read_pose

ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1e308, -1e308, 10**400, 1.5, "", "x", "nose", [], {}, [1], [1, 2],
    [None, None], {"x": 1}, float("nan"), float("inf"), -float("inf"), [[[]]], "posedraw.pose/1",
]  # fmt: skip


def _parts() -> dict[str, Part]:
    def part(count: int, offset: float) -> Part:
        xy = np.stack([np.linspace(4, 60, count), np.full(count, offset)], axis=1)[None]
        return Part(xy, np.array([[2, 0, 1] * (count // 3) + [2] * (count % 3)]), np.linspace(0, 1, count)[None])

    return {"torso": part(2, 8), "feet": part(6, 60), "left_hand": part(21, 20), "face": part(70, 5)}


def _valid_documents() -> list[Any]:
    xy = np.stack([np.linspace(5, 60, 17), np.linspace(3, 58, 17)], axis=1)
    pose = Pose.single(xy, 64, 64, state=[2, 1, 0] * 5 + [2, 2], confidence=np.linspace(0, 1, 17))
    docs = [dump_pose(pose, name) for name in FORMATS]
    full = pose.replace(parts=_parts())
    docs += [dump_pose(full, name) for name in ("posedraw", "openpose", "openpose25", "coco")]
    frames = [dump_pose(full, "openpose"), {"people": [], "canvas_width": 64, "canvas_height": 64, "animals": []}]
    results = [{"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": xy.ravel().tolist() * 0 + [1.0] * 51}]
    wholebody = {**results[0], "lefthand_kpts": [2.0, 3.0, 0.5] * 21, "face_kpts": [[4.0, 5.0, 0.7]] * 68}
    return [*docs, frames, results, [wholebody]]


def _nodes(doc: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every node of a JSON tree."""
    found = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _nodes(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _nodes(value, (*path, i))
    return found


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _nodes(doc) if p]
        if not paths:
            return rng.choice(ODD_VALUES)
        path = rng.choice(paths)
        parent, key = _parent(doc, path), path[-1]
        action = rng.randrange(5)
        if action == 0:  # replace with an odd value
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action == 1:  # delete
            del parent[key]
        elif action == 2 and isinstance(parent, dict):  # rename the key
            parent[key + "_" if isinstance(key, str) else "k"] = parent.pop(key)
        elif action == 3 and isinstance(parent[key], list):  # drop or repeat an element
            items = parent[key]
            if items and rng.random() < 0.5:
                items.pop(rng.randrange(len(items)))
            else:
                items.append(copy.deepcopy(rng.choice(items)) if items else 0)
        else:  # numbers pushed around
            if isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
                parent[key] = parent[key] * rng.choice([-1, 0, 1e6, 1e-9, 3])
            else:
                parent[key] = rng.choice(ODD_VALUES)
    return doc


@pytest.mark.parametrize("forced", [None, *FORMATS])
def test_readers_raise_only_pose_format_errors_on_mutated_documents(forced):
    rng = random.Random(1234)
    options = [
        ReadOptions(),
        ReadOptions(canvas=(64, 64)),
        ReadOptions(coordinates="pixels", image_id=1),
        ReadOptions(canvas=(64, 64), frame=1),
    ]
    outcomes = {"pose": 0, "error": 0}
    valid = _valid_documents()  # built once: _mutate works on a copy
    for i in range(800):
        doc = _mutate(rng.choice(valid), rng)
        try:
            pose = parse_pose(doc, forced, options[i % len(options)])
        except PoseFormatError as exc:
            assert str(exc) and "\n" not in str(exc)
            outcomes["error"] += 1
        else:
            assert isinstance(pose, Pose) and pose.num_people >= 0
            outcomes["pose"] += 1
    # the fuzzer must exercise both paths, or it proves nothing
    assert outcomes["error"] > 100 and (forced is not None or outcomes["pose"] > 20)


def test_truncated_and_corrupted_files_raise_only_pose_format_errors(tmp_path):
    rng = random.Random(99)
    path = tmp_path / "pose.json"
    texts = [json.dumps(doc) for doc in _valid_documents()]
    for _ in range(600):
        data = bytearray(rng.choice(texts).encode())
        if rng.random() < 0.5:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            read_pose(path, options=ReadOptions(canvas=(64, 64)))
        except PoseFormatError as exc:
            assert str(exc).startswith(str(path))
