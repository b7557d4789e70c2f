"""A studio on the built-in models for the API and browser tests (models loaded once per test session)."""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from posedraw.pipelines import load_pipeline
from posedraw.studio.app import Studio, create_app
from posedraw.studio.jobs import JobQueue
from posedraw.studio.requests import Limits, Models
from posedraw.studio.security import Access

STANDING = json.loads((Path(__file__).parents[1] / "examples" / "poses" / "standing.json").read_text())


@functools.cache
def builtin_pipelines() -> dict:
    return {name: load_pipeline(name) for name in ("builtin:diffusion", "builtin:transformer")}


#: what FastAPI's TestClient talks to: Host `testserver` (port 80)
TESTSERVER = Access(frozenset({"testserver:80"}))


def make_studio(out: Path, queue: int = 4, limits: Limits | None = None, access: Access = TESTSERVER) -> Studio:
    limits = limits or Limits()
    return Studio(Models(dict(builtin_pipelines()), limits), out, JobQueue(queue), limits, access=access)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningServer:
    """uvicorn serving a studio on a free port of 127.0.0.1 in a thread (what `posedraw studio` runs),
    with `token` if given."""

    def __init__(self, studio: Studio, token: str | None = None) -> None:
        import uvicorn

        self.port = free_port()
        studio.access = Access.serving("127.0.0.1", self.port, token=token)
        config = uvicorn.Config(create_app(studio), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the studio server did not start in 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def close_studio(studio: Studio) -> None:
    """Cancel its jobs and wait for the one running: a drawing still inside torch when the interpreter
    exits aborts the test process ("terminate called without an active exception")."""
    studio.jobs.close(wait=300)


@contextlib.contextmanager
def small_limits_client(tmp_path: Path):
    """A TestClient of a studio with a 2-job queue and small limits (300 x 300 pixels, 200 kB bodies),
    closed on exit (waiting for a running drawing)."""
    from fastapi.testclient import TestClient

    studio = make_studio(tmp_path / "gallery", queue=2, limits=Limits(max_pixels=300 * 300, max_body=200_000))
    with TestClient(create_app(studio)) as test_client:
        yield test_client
    close_studio(studio)
