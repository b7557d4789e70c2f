"""How fast does the studio answer? Request-to-image time of a preview (the fast setting) and of a full
drawing, and a simulated drag, against a real server (uvicorn on a free port) with the built-in model.

- `preview` / `full`: POST /api/preview until the PNG is received, `quality` preview (6 steps) or full (the
  request's 20 DPM++ steps); both warmed up, then alternating repeats, medians.
- `drag`: a drag of 20 moves, one every 50 ms, sent the way the page sends them: one preview in flight,
  the newest pose waiting (older waiting poses are dropped). Reports how many requests were drawn, how far
  behind the newest move the shown drawing was when each image arrived (in requests), and the time from
  the last move to the drawing of the final pose.

    python bench/studio.py [--repeats 15] [--json bench/results/studio.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import torch
from common import publish

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.studio_helpers import STANDING, RunningServer, make_studio


def moved(doc: dict, step: int) -> dict:
    """The standing pose with its left wrist moved `step` * 4 px to the right."""
    person = doc["people"][0]
    wrist = dict(person["joints"]["left_wrist"], x=person["joints"]["left_wrist"]["x"] + 4 * step)
    return {**doc, "people": [{**person, "joints": {**person["joints"], "left_wrist": wrist}}]}


def timed(client: httpx.Client, quality: str, seq: int) -> float:
    started = time.perf_counter()
    body = {"pose": STANDING, "options": {"steps": 20}, "client": "bench", "seq": seq, "quality": quality}
    response = client.post("/api/preview", json=body)
    response.raise_for_status()
    return time.perf_counter() - started


def drag(client: httpx.Client, moves: int = 20, every: float = 0.05) -> dict:
    """The page's policy, replayed: one request in flight, the newest move waits."""
    lock = threading.Lock()
    state: dict = {"latest_move": -1, "waiting": None, "busy": False, "shown": []}
    seq = [0]

    def send(move: int) -> None:
        seq[0] += 1
        body = {"pose": moved(STANDING, move), "client": "drag", "seq": seq[0], "quality": "preview"}
        client.post("/api/preview", json=body).raise_for_status()
        with lock:
            waiting = int(state["waiting"] is not None)  # requests the shown drawing is behind: the waiting pose
            state["shown"].append((time.perf_counter(), move, state["latest_move"], waiting))
            following, state["waiting"] = state["waiting"], None
            state["busy"] = following is not None
        if following is not None:
            send(following)

    threads = []
    for move in range(moves):
        with lock:
            state["latest_move"] = move
            if state["busy"]:
                state["waiting"] = move
                start = None
            else:
                state["busy"], start = True, move
        if start is not None:
            threads.append(threading.Thread(target=send, args=(start,)))
            threads[-1].start()
        last_move_at = time.perf_counter()
        time.sleep(every)
    for thread in threads:
        thread.join()
    final = next(t for t, move, _, _ in state["shown"] if move == moves - 1)
    return {
        "moves": moves,
        "move_every_s": every,
        "previews_drawn": len(state["shown"]),
        "moves_behind_when_shown": [latest - move for _, move, latest, _ in state["shown"]],
        "requests_behind_when_shown_max": max(waiting for _, _, _, waiting in state["shown"]),
        "final_pose_shown_after_last_move_s": round(final - last_move_at, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import tempfile

    studio = make_studio(Path(tempfile.mkdtemp()) / "gallery")
    times: dict[str, list[float]] = {"preview": [], "full": []}
    with RunningServer(studio) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        seq = 0
        for quality in ("preview", "full", "preview", "full"):  # warm-up
            seq += 1
            timed(client, quality, seq)
        for _ in range(args.repeats):
            for quality in ("preview", "full"):
                seq += 1
                times[quality].append(timed(client, quality, seq))
        dragged = drag(client)
    studio.jobs.close()
    rows = {q: {"median_s": round(statistics.median(t), 4), "min_s": round(min(t), 4), "max_s": round(max(t), 4)}
            for q, t in times.items()}  # fmt: skip
    publish(
        "studio",
        {
            "model": "builtin:diffusion",
            "torch_threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "settings": {"preview": "DPM-Solver++ 6 steps, 1 image", "full": "DPM-Solver++ 20 steps, 1 image"},
            "request_to_image": rows,
            "drag": dragged,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
