"""The studio's job queue: full-quality drawings and tunings one after another on a worker thread, a
bounded queue.

Why a thread and not a process: the models are loaded once and shared with the preview path (which runs
in the request's own thread, so previews never wait behind full jobs). A job's work reports each unit of
progress (an image drawn, a tuning step) and checks for a cancel between units, so a cancel takes effect
before the next image or step.
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


class Cancelled(Exception):
    """Raised inside a job's work when its cancel was requested."""


@dataclass
class StudioJob:
    """One request of `total` units of work; `work(progress)` does them, reporting to `progress`
    (`JobProgress`): a drawing job draws `total` images, a tuning job runs `total` steps."""

    client: str
    total: int
    work: Callable[[JobProgress], None]
    kind: str = "draw"
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
            "kind": self.kind,
            "client": self.client,
            "status": self.status,
            "progress": {"done": self.done, "total": self.total},
            "images": list(self.images),
            "error": self.error,
        }


class JobProgress:
    """What a job's work reports through: units done, images written, and whether to stop."""

    def __init__(self, queue: JobQueue, job: StudioJob) -> None:
        self.queue, self.job = queue, job

    def check(self) -> None:
        if self.job.cancel_requested:
            raise Cancelled()

    def advance(self, image: Path | None = None) -> None:
        """One unit done (with the image it wrote, if any); then stop here if a cancel came."""
        images = self.job.images if image is None else [*self.job.images, image.name]
        self.queue._update(self.job, done=self.job.done + 1, images=images)
        self.check()

    def add_image(self, image: Path) -> None:
        self.queue._update(self.job, images=[*self.job.images, image.name])


class JobQueue:
    """At most `limit` jobs waiting or running; one worker thread draws them in order."""

    def __init__(self, limit: int, keep: int = 200) -> None:
        if limit < 1:
            raise ValueError(f"--queue: expected at least 1, got {limit}")
        self.limit, self.keep = limit, keep
        self.closed = False  # the server is stopping: event streams end instead of waiting for their job
        self.jobs: dict[str, StudioJob] = {}
        self.changed = threading.Condition()
        self._pending: queue.Queue[StudioJob | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="studio-jobs", daemon=True)
        self._worker.start()

    def snapshot(self) -> list[StudioJob]:
        """The jobs kept, read under the lock (the worker forgets old ones as new ones come)."""
        with self.changed:
            return list(self.jobs.values())

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
        """Block until the job's public state differs from `seen`, the queue closes, or `timeout`: for
        server-sent events."""
        with self.changed:
            self.changed.wait_for(lambda: self.closed or _state(job) != seen, timeout=timeout)

    def close(self, wait: float = 0) -> None:
        """Stop: every job is cancelled (the running one before its next unit), waiting event streams
        end at once (so a server shutting down does not wait for a job), the worker stops; `wait`
        seconds at most for the running job's current unit."""
        with self.changed:
            self.closed = True
            for job in self.jobs.values():
                if job.status not in FINISHED:
                    job.cancel_requested = True
                    job.status = "cancelled" if job.status == "queued" else job.status
            self.changed.notify_all()
        self._pending.put(None)
        if wait:
            self._worker.join(wait)

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
                progress = JobProgress(self, job)
                progress.check()
                job.work(progress)
                self._update(job, status="cancelled" if job.cancel_requested else "done")
            except Cancelled:
                self._update(job, status="cancelled")
            except Exception as exc:  # a job's failure is reported on the job; the worker goes on
                self._update(job, status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _state(job: StudioJob) -> tuple:
    return (job.status, job.done, len(job.images))


__all__ = ["FINISHED", "Cancelled", "JobProgress", "JobQueue", "QueueFull", "StudioJob"]
