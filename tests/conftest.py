"""Shared test set-up: deterministic hypothesis, the reference fixtures, and pose strategies."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from posedraw.pose import NUM_JOINTS, Part, Pose
from posedraw.pose.schema import PART_SIZES, PARTS

# Tests must be deterministic: hypothesis draws the same examples on every run and machine.
settings.register_profile(
    "posedraw", derandomize=True, deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
# the edit-test loop (pytest -m "not slow"): the same properties on fewer examples; CI runs all 200
settings.register_profile("posedraw-quick", settings.get_profile("posedraw"), max_examples=50)
settings.load_profile("posedraw")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """pyproject's addopts name pytest-xdist's options (the suite runs on every core); without xdist
    (`-p no:xdist`, or an install without the dev extra) they are accepted and the tests run in one process."""
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist absent")
        group.addoption("--numprocesses", default=None, help="ignored: pytest-xdist is not loaded")
        group.addoption("--dist", default="no", help="ignored: pytest-xdist is not loaded")


def pytest_configure(config: pytest.Config) -> None:
    """`-m "not slow"` loads the quick hypothesis profile, unless --hypothesis-profile names one."""
    if "not slow" in (config.getoption("markexpr") or "") and not config.getoption("--hypothesis-profile"):
        settings.load_profile("posedraw-quick")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # an xdist worker: the cores are shared, and torch threads spinning on a busy core cost
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


REPO = Path(__file__).resolve().parents[1]


def find_fixtures(repo: Path, environ: dict[str, str]) -> Path | None:
    """The reference fixtures: $POSEDRAW_FIXTURES, else a `shared/fixtures` folder beside the checkout or
    one of its parents (the layout the project is developed in); None when there is none."""
    given = environ.get("POSEDRAW_FIXTURES")
    candidates = [Path(given)] if given else [folder / "shared" / "fixtures" for folder in repo.parents]
    return next((c for c in candidates if (c / "README.md").is_file()), None)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    found = find_fixtures(REPO, dict(os.environ))
    if found is None:
        message = "reference fixtures not found: set POSEDRAW_FIXTURES to the shared/fixtures folder"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI must run the parity tests
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def keypoint_files(fixtures: Path) -> dict[str, Path]:
    folder = fixtures / "lxj616_keypoints"
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


@st.composite
def poses(draw: st.DrawFn, max_people: int = 3, with_confidence: bool | None = None, states: tuple = (0, 1, 2),
          square: bool = False, with_parts: bool | None = None, min_people: int = 1) -> Pose:  # fmt: skip
    """Random valid poses: integer canvases 16..2048 px, joints inside the canvas (a few outside).

    `with_parts` True / False / None (either): a random set of parts (torso, feet, hands, 68- or 70-point
    faces) drawn like the body, with or without confidences of their own.
    """
    width = draw(st.integers(16, 2048))
    height = width if square else draw(st.integers(16, 2048))
    people = draw(st.integers(min_people, max_people))
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
    parts = draw(_parts(people, width, height, states, with_confidence)) if draw(_maybe(with_parts)) else {}
    return Pose(xy, state.reshape(people, NUM_JOINTS), width, height, confidence, parts)


def _maybe(flag: bool | None) -> st.SearchStrategy[bool]:
    return st.booleans() if flag is None else st.just(flag)


@st.composite
def _parts(draw: st.DrawFn, people: int, width: int, height: int, states: tuple,
           with_confidence: bool | None) -> dict[str, Part]:  # fmt: skip
    """Parts from a drawn seed: hundreds of face points are too many to draw one by one."""
    names = draw(st.lists(st.sampled_from(list(PARTS)), min_size=1, unique=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parts = {}
    for name in names:
        count = int(rng.choice(PART_SIZES[name]))
        xy = rng.uniform(-0.1, 1.1, (people, count, 2)) * np.array([width, height])
        state = rng.choice(np.array(states), (people, count))
        has_conf = bool(rng.integers(2)) if with_confidence is None else with_confidence
        confidence = rng.uniform(0.0, 1.0, (people, count)) if has_conf else None
        parts[name] = Part(xy, state, confidence)
    return parts


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The tiny training world (tests/tiny_world.py), built once per session."""
    from .tiny_world import build_world

    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def two_process_run(tmp_path_factory):
    """A transformer run of two processes (tests/training_helpers.py), started once per session."""
    from .training_helpers import train_on_two_processes

    return train_on_two_processes(tmp_path_factory.mktemp("two-processes"))
