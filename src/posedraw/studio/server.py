"""Serving the studio with uvicorn, and stopping it promptly.

uvicorn stops on SIGTERM / SIGINT by waiting for open connections to finish. A page following a job's
progress holds a server-sent-events stream open until the job ends (a whole drawing job: minutes), so
the stop would wait for it. Here a stop closes the job queue first, which cancels its jobs and ends
every event stream at once; `GRACE_SECONDS` bounds the wait for anything else (a preview being drawn).
The image being drawn at the stop is abandoned with the process (images are written atomically, so
none is left half-written). SIGTERM ends the process there (uvicorn re-raises it); after Ctrl-C the
worker gets `GRACE_SECONDS` to finish its image, as an interpreter exiting while a thread is inside
torch aborts ("terminate called without an active exception").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from posedraw.studio.jobs import JobQueue

#: how long a stopping server waits for open requests before it cancels them
GRACE_SECONDS = 3


class StudioServer(uvicorn.Server):
    """uvicorn's server, calling `on_stop` as soon as it is asked to stop."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # a signal handler: it may interrupt the loop's thread inside the queue's lock, so the queue is
        # closed from a thread of its own
        threading.Thread(target=self.on_stop, name="studio-stop", daemon=True).start()
        super().handle_exit(sig, frame)


def serve(app: FastAPI, host: str, port: int, jobs: JobQueue) -> None:
    """Serve `app` until SIGTERM / SIGINT, closing `jobs` (the app's queue) as soon as a stop comes."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACE_SECONDS)
    try:
        StudioServer(config, jobs.close).run()
    finally:
        jobs.close(wait=GRACE_SECONDS)


__all__ = ["GRACE_SECONDS", "StudioServer", "serve"]
