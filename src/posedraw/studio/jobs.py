"""The studio's job queue: full-quality drawings one after another on a worker thread, a bounded queue.

Why a thread and not a process: the models are loaded once and shared with the preview path (which runs
in the request's own thread, so previews never wait behind full jobs). A job draws its images one at a
time so that its progress moves image by image and a cancel takes effect before the next image.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: tuple[Status, ...] = ("done", "failed", "cancelled")


class QueueFull(Exception):
    """The queue holds `--queue` jobs already."""


@dataclass
class StudioJob:
    """One request to draw `total` images of a pose; `run(index)` draws image `index` and returns its file."""

    client: str
    total: int
    run: Callable[[int], Path]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: Status = "queued"
    done: int = 0
    images: list[str] = field(default_factory=list)
    error: str | None = None
    cancel_requested: bool = False
    created: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        """What the API shows of the job."""
        return {
            "id": self.id,
            "client": self.client,
            "status": self.status,
            "progress": {"done": self.done, "total": self.total},
            "images": list(self.images),
            "error": self.error,
        }


class JobQueue:
    """At most `limit` jobs waiting or running; one worker thread draws them in order."""

    def __init__(self, limit: int, keep: int = 200) -> None:
        if limit < 1:
            raise ValueError(f"--queue: expected at least 1, got {limit}")
        self.limit, self.keep = limit, keep
        self.jobs: dict[str, StudioJob] = {}
        self.changed = threading.Condition()
        self._pending: queue.Queue[StudioJob | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="studio-jobs", daemon=True)
        self._worker.start()

    def active(self) -> int:
        return sum(job.status in ("queued", "running") for job in self.jobs.values())

    def submit(self, job: StudioJob) -> StudioJob:
        with self.changed:
            if self.active() >= self.limit:
                raise QueueFull(f"the job queue is full ({self.limit} jobs waiting or running); try again later")
            self.jobs[job.id] = job
            self._forget_old()
            self.changed.notify_all()
        self._pending.put(job)
        return job

    def cancel(self, job_id: str) -> StudioJob | None:
        with self.changed:
            job = self.jobs.get(job_id)
            if job is not None and job.status not in FINISHED:
                job.cancel_requested = True
                if job.status == "queued":
                    job.status = "cancelled"
                self.changed.notify_all()
            return job

    def wait_for_change(self, job: StudioJob, seen: tuple, timeout: float) -> None:
        """Block until the job's public state differs from `seen` (or `timeout`): for server-sent events."""
        with self.changed:
            self.changed.wait_for(lambda: _state(job) != seen, timeout=timeout)

    def close(self) -> None:
        self._pending.put(None)

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.status in FINISHED]
        for job in sorted(finished, key=lambda j: j.created)[: max(0, len(self.jobs) - self.keep)]:
            del self.jobs[job.id]

    def _update(self, job: StudioJob, **changes: Any) -> None:
        with self.changed:
            for name, value in changes.items():
                setattr(job, name, value)
            self.changed.notify_all()

    def _work(self) -> None:
        while (job := self._pending.get()) is not None:
            if job.status == "cancelled":
                continue
            self._update(job, status="running")
            try:
                for index in range(job.total):
                    if job.cancel_requested:
                        break
                    path = job.run(index)
                    self._update(job, done=index + 1, images=[*job.images, path.name])
                self._update(job, status="cancelled" if job.cancel_requested else "done")
            except Exception as exc:  # a job's failure is reported on the job; the worker goes on
                self._update(job, status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _state(job: StudioJob) -> tuple:
    return (job.status, job.done, len(job.images))


__all__ = ["FINISHED", "JobQueue", "QueueFull", "StudioJob"]
