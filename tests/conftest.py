"""Shared test set-up: deterministic hypothesis, the reference fixtures, and pose strategies."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from posedraw.pose import NUM_JOINTS, Pose

# Tests must be deterministic: hypothesis draws the same examples on every run and machine.
settings.register_profile(
    "posedraw", derandomize=True, deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("posedraw")

REPO = Path(__file__).resolve().parents[1]


def _fixtures_dir() -> Path:
    candidates = [os.environ.get("POSEDRAW_FIXTURES"), REPO.parent / "shared" / "fixtures", "/work/shared/fixtures"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "README.md").is_file():
            return Path(candidate)
    raise RuntimeError("reference fixtures not found: set POSEDRAW_FIXTURES to the shared/fixtures folder")


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return _fixtures_dir()


@pytest.fixture(scope="session")
def keypoint_files(fixtures: Path) -> dict[str, Path]:
    folder = fixtures / "lxj616_keypoints"
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


@st.composite
def poses(draw: st.DrawFn, max_people: int = 3, with_confidence: bool | None = None, states: tuple = (0, 1, 2),
          square: bool = False) -> Pose:  # fmt: skip
    """Random valid poses: integer canvases 16..2048 px, joints inside the canvas (a few outside)."""
    width = draw(st.integers(16, 2048))
    height = width if square else draw(st.integers(16, 2048))
    people = draw(st.integers(1, max_people))
    unit = st.floats(-0.1, 1.1, allow_nan=False, allow_infinity=False, width=64)
    xy = np.array(draw(st.lists(unit, min_size=people * NUM_JOINTS * 2, max_size=people * NUM_JOINTS * 2)))
    xy = xy.reshape(people, NUM_JOINTS, 2) * np.array([width, height])
    state = np.array(
        draw(st.lists(st.sampled_from(states), min_size=people * NUM_JOINTS, max_size=people * NUM_JOINTS))
    )
    has_conf = draw(st.booleans()) if with_confidence is None else with_confidence
    confidence = None
    if has_conf:
        conf = draw(st.lists(st.floats(0.0, 1.0), min_size=people * NUM_JOINTS, max_size=people * NUM_JOINTS))
        confidence = np.array(conf).reshape(people, NUM_JOINTS)
    return Pose(xy, state.reshape(people, NUM_JOINTS), width, height, confidence)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The tiny training world (tests/tiny_world.py), built once per session."""
    from .tiny_world import build_world

    return build_world(tmp_path_factory.mktemp("world"))
