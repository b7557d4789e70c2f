"""Serving the studio with uvicorn, and stopping it promptly.

uvicorn stops on SIGTERM / SIGINT by waiting for open connections to finish. A page following a job's
progress holds a server-sent-events stream open until the job ends (a whole drawing job: minutes), so
the stop would wait for it. Here a stop closes the job queue first, which ends every event stream at
once; `GRACE_SECONDS` bounds the wait for anything else (a preview being drawn). The job running at the
stop is abandoned with the process (its finished images are already written; an image is written
atomically, so none is left half-written).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

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


def serve(app: FastAPI, host: str, port: int, on_stop: Callable[[], None]) -> None:
    """Serve `app` until SIGTERM / SIGINT; `on_stop` (closing the job queue) runs first on a stop."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACE_SECONDS)
    StudioServer(config, on_stop).run()


__all__ = ["GRACE_SECONDS", "StudioServer", "serve"]
