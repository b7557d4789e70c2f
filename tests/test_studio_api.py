"""The studio's HTTP API on the built-in models: every endpoint, every bad request, the queue, restarts."""

from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from posedraw.pose import parse_pose
from posedraw.studio.app import create_app
from posedraw.studio.jobs import FINISHED
from posedraw.studio.requests import Models, PreviewGate
from tests.studio_helpers import STANDING, builtin_pipelines, close_studio, make_studio, small_limits_client


@pytest.fixture
def client(tmp_path):
    with small_limits_client(tmp_path) as test_client:
        yield test_client


def wait_finished(client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while (state := client.get(f"/api/jobs/{job_id}").json())["status"] not in FINISHED:
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return state


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_models_presets_and_skeleton_describe_what_the_page_needs(client):
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert models["builtin:diffusion"]["kind"] == "diffusion" and models["builtin:diffusion"]["takes_text"]
    assert models["builtin:diffusion"]["max_people"] == 3
    assert "ddim" in models["builtin:diffusion"]["options"]["sampler"]["choices"]
    assert set(models["builtin:transformer"]["options"]) >= {"temperature", "top_k", "top_p", "guidance"}
    assert "latents" not in models["builtin:diffusion"]["options"]  # files are the CLI's, not the studio's
    presets = client.get("/api/presets").json()
    assert {"standing", "waving", "two_figures"} <= set(presets)
    assert parse_pose(presets["two_figures"]).num_people == 2
    skeleton = client.get("/api/skeleton").json()
    assert skeleton["joints"][9] == "left_wrist" and skeleton["mirror"][9] == 10 and len(skeleton["limbs"]) == 16


def test_a_job_draws_into_the_gallery_with_its_recipe_and_reports_progress_as_events(client):
    body = {"pose": STANDING, "options": {"steps": 4, "prompt": "red hair, purple cape"}, "seed": 7, "count": 2,
            "client": "tab-a"}  # fmt: skip
    created = client.post("/api/jobs", json=body)
    assert created.status_code == 202
    job = created.json()
    assert job["notes"] == ["the model does not know purple_cape: ignored"]
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as events:
        states = [json.loads(line[6:]) for line in events.iter_lines() if line.startswith("data: ")]
    assert [s["progress"]["done"] for s in states][-1] == 2 and states[-1]["status"] == "done"
    assert [s["progress"]["done"] for s in states] == sorted(s["progress"]["done"] for s in states)
    gallery = client.get("/api/images").json()
    assert sorted(item["name"] for item in gallery) == sorted(states[-1]["images"])
    first = next(item for item in gallery if item["seed"] == 7)
    assert first["options"]["prompt"] == "red hair, purple cape" and first["options"]["steps"] == 4
    assert np.allclose(parse_pose(first["pose"]).xy, parse_pose(STANDING).xy, atol=1e-3)
    fetched = client.get(first["url"])
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert "posedraw" in Image.open(io.BytesIO(fetched.content)).text  # the download keeps the recipe


def test_jobs_of_two_tabs_do_not_mix(client):
    ids = {}
    for tab in ("tab-a", "tab-b"):
        body = {"pose": STANDING, "options": {"steps": 2}, "client": tab}
        ids[tab] = client.post("/api/jobs", json=body).json()["id"]
    for tab, job_id in ids.items():
        wait_finished(client, job_id)
        assert [j["id"] for j in client.get(f"/api/jobs?client={tab}").json()] == [job_id]


@pytest.mark.slow
def test_a_full_queue_answers_429_and_a_cancelled_job_stops_before_its_next_image(client):
    slow = {"pose": STANDING, "options": {"steps": 120}, "count": 8}
    first = client.post("/api/jobs", json=slow).json()
    second = client.post("/api/jobs", json=slow).json()
    refused = client.post("/api/jobs", json=slow)
    assert refused.status_code == 429 and "queue is full" in refused.json()["error"]
    assert client.delete(f"/api/jobs/{second['id']}").json()["status"] == "cancelled"  # still queued
    client.delete(f"/api/jobs/{first['id']}")
    state = wait_finished(client, first["id"])
    assert state["status"] == "cancelled" and state["progress"]["done"] < 8
    assert len(client.get("/api/images").json()) == state["progress"]["done"]
    assert client.post("/api/jobs", json={**slow, "count": 1, "options": {"steps": 2}}).status_code == 202


def test_the_gallery_survives_a_restart(tmp_path):
    out = tmp_path / "gallery"
    studio = make_studio(out)
    with TestClient(create_app(studio)) as first:
        job = first.post("/api/jobs", json={"pose": STANDING, "options": {"steps": 2}, "seed": 3}).json()
        wait_finished(first, job["id"])
    close_studio(studio)
    again = make_studio(out)
    with TestClient(create_app(again)) as second:
        gallery = second.get("/api/images").json()
        assert [item["seed"] for item in gallery] == [3] and gallery[0]["model"] == "builtin:diffusion"
    close_studio(again)


def test_preview_returns_a_png_and_drops_a_request_a_newer_one_overtook(client):
    first = client.post("/api/preview", json={"pose": STANDING, "client": "a", "seq": 5})
    assert first.status_code == 200 and first.headers["X-Preview-Seq"] == "5"
    assert Image.open(io.BytesIO(first.content)).size == (64, 64)
    stale = client.post("/api/preview", json={"pose": STANDING, "client": "a", "seq": 3})
    assert stale.status_code == 409 and "superseded" in stale.json()["error"]
    assert client.post("/api/preview", json={"pose": STANDING, "client": "b", "seq": 1}).status_code == 200


@pytest.mark.slow
def test_preview_is_the_fast_setting_and_full_quality_the_request_s_own(client):
    """The preview's few steps differ from the full drawing; the full one is exactly what a job draws."""
    body = {"pose": STANDING, "options": {"steps": 20}, "seed": 4, "client": "q"}
    fast = client.post("/api/preview", json={**body, "seq": 1}).content
    full = client.post("/api/preview", json={**body, "seq": 2, "quality": "full"}).content
    job = client.post("/api/jobs", json={"pose": STANDING, "options": {"steps": 20}, "seed": 4}).json()
    name = wait_finished(client, job["id"])["images"][0]
    drawn = np.asarray(Image.open(io.BytesIO(client.get(f"/api/images/{name}").content)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(full))), drawn)
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(fast))), drawn)


class HeldPipeline:
    """The built-in diffusion pipeline whose first drawing waits until `release()` is true, so that other
    previews queue up behind it."""

    def __init__(self, release) -> None:
        self.inner, self.release = builtin_pipelines()["builtin:diffusion"], release
        self.entered, self.calls = threading.Event(), 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            deadline = time.monotonic() + 60
            while not self.release() and time.monotonic() < deadline:
                time.sleep(0.01)
        return self.inner(*args, **kwargs)


def test_of_two_previews_waiting_behind_a_drawing_only_the_newest_is_drawn(tmp_path):
    gate = PreviewGate()
    # hold the first drawing until the third request has arrived (read, never set: the API decides)
    held = HeldPipeline(lambda: gate.latest.get("tab") == 3)
    studio = make_studio(tmp_path / "gallery")
    studio.models, studio.previews = Models({"builtin:diffusion": held}, studio.limits), gate
    with TestClient(create_app(studio)) as client, ThreadPoolExecutor(3) as pool:

        def preview(seq: int):
            return pool.submit(client.post, "/api/preview", json={"pose": STANDING, "client": "tab", "seq": seq})

        first = preview(1)
        assert held.entered.wait(60)
        older, newest = preview(2), preview(3)
        answers = [future.result(timeout=120) for future in (first, older, newest)]
    assert [a.status_code for a in answers] == [200, 409, 200] and held.calls == 2
    assert answers[1].json()["error"] == "superseded by a newer preview of the same client"
    assert [a.headers["X-Preview-Seq"] for a in (answers[0], answers[2])] == ["1", "3"]
    close_studio(studio)


def test_pose_import_export_skeleton_and_detect(client):
    from posedraw.pose import dump_pose

    openpose = dump_pose(parse_pose(STANDING), "openpose")
    imported = client.post("/api/pose/import", json=openpose).json()
    assert np.allclose(parse_pose(imported["pose"]).xy, parse_pose(STANDING).xy, atol=0.01)
    for fmt in ("openpose", "coco", "posedraw"):
        exported = client.post(f"/api/pose/export?format={fmt}", json=STANDING)
        assert exported.status_code == 200
        assert np.allclose(parse_pose(exported.json()).xy, parse_pose(STANDING).xy, atol=0.01)
    skeleton = client.post("/api/pose/skeleton", json=STANDING)
    assert Image.open(io.BytesIO(skeleton.content)).size == (512, 512)
    no_person = client.post("/api/pose/detect", content=png_bytes(120, 120), headers={"Content-Type": "image/png"})
    assert no_person.status_code in (422, 501) and no_person.json()["error"]


BAD_REQUESTS = [
    ("post", "/api/jobs", {"pose": {"people": "x"}}, 400, "pose:"),
    ("post", "/api/jobs", {"pose": STANDING, "options": {"cfg": 2}}, 400, "--cfg"),
    ("post", "/api/jobs", {"pose": STANDING, "options": {"steps": 0}}, 400, "--steps: expected an integer"),
    ("post", "/api/jobs", {"pose": STANDING, "options": {"steps": 500}}, 400, "at most 250"),
    ("post", "/api/jobs", {"pose": STANDING, "options": {"guidance": "lots"}}, 400, "--guidance"),
    ("post", "/api/jobs", {"pose": STANDING, "options": {"latents": [1]}}, 400, "options.latents"),
    ("post", "/api/jobs", {"pose": STANDING, "count": 0}, 400, "count"),
    ("post", "/api/jobs", {"pose": STANDING, "seed": -1}, 400, "seed"),
    ("post", "/api/jobs", {"pose": STANDING, "model": "../x"}, 400, "model"),
    ("post", "/api/jobs", [1, 2], 400, "request"),
    ("post", "/api/preview", {"pose": STANDING, "quality": "best"}, 400, "quality"),
    ("post", "/api/preview", {"pose": STANDING, "options": {"eta": 0.5, "sampler": "dpm++"}}, 400, "--eta"),
    ("post", "/api/pose/export?format=bvh", STANDING, 400, "format"),
    ("post", "/api/pose/import", {"annotations": [{"keypoints": [1, 2]}]}, 400, "pose file"),
    ("get", "/api/images/..secret.png", None, 400, "plain PNG file name"),
    ("get", "/api/images/a%5Cb.png", None, 400, "plain PNG file name"),
    ("get", "/api/images/missing.png", None, 404, "not in the gallery"),
    ("get", "/api/jobs/nope", None, 404, "no such job"),
    ("delete", "/api/jobs/nope", None, 404, "no such job"),
    ("get", "/api/nothing", None, 404, "not found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_with_one_line(client, tmp_path, method, path, body, status, words):
    response = getattr(client, method)(path, **({} if body is None else {"json": body}))
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert words in message and "\n" not in message and "Traceback" not in message
    assert not list((tmp_path / "gallery").glob("*")) if (tmp_path / "gallery").exists() else True
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["gallery"])  # nothing written outside --out


def test_uploads_that_are_not_images_or_too_big_and_bodies_over_the_limit_are_refused(client):
    not_image = client.post("/api/pose/detect", content=b"GIF89a nonsense", headers={"Content-Type": "image/png"})
    assert not_image.status_code == 400 and not_image.json()["error"] == "upload: expected a PNG, JPEG or WebP image"
    huge = client.post("/api/pose/detect", content=png_bytes(400, 400), headers={"Content-Type": "image/png"})
    assert huge.status_code == 413 and "at most 90000 pixels" in huge.json()["error"]
    empty = client.post("/api/pose/detect", content=b"", headers={"Content-Type": "image/png"})
    assert empty.status_code == 400
    big = client.post("/api/jobs", content=b"{" + b" " * 300_000 + b"}", headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "at most 200000 bytes" in big.json()["error"]
    not_json = client.post("/api/jobs", content=b"pose please", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "request body: expected JSON: Expecting value at line 1 column 1"


def test_the_page_and_the_openapi_description_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "posedraw studio" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/preview", "/api/images"} <= set(paths)
    job = paths["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert job["required"] == ["pose"] and job["properties"]["options"]["properties"]["sampler"]["enum"][0] == "ddim"
    assert set(paths["/api/pose/detect"]["post"]["requestBody"]["content"]) >= {"image/png", "image/jpeg"}


def test_the_studio_command_refuses_bad_set_ups_in_one_line_before_serving(capsys, tmp_path, monkeypatch):
    from posedraw.studio import server
    from tests.cli_helpers import run_cli

    served = []
    monkeypatch.setattr(server, "serve", lambda app, host, port, jobs: served.append({"host": host, "port": port}))
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    code, _, err = run_cli(capsys, "studio", "--out", afile)
    assert code == 2 and err.strip() == f"error: {afile}: is a file; expected a folder to write into"
    code, _, err = run_cli(capsys, "studio", "--model", tmp_path / "nope", "--out", tmp_path / "g")
    assert code == 2 and "expected a model folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists() and not served
    code, _, err = run_cli(capsys, "studio", "--host", "0.0.0.0", "--out", tmp_path / "g", "--model", "builtin")
    assert code == 0 and served == [{"host": "0.0.0.0", "port": 7860}]
    assert "warning: --host 0.0.0.0 lets anyone who can reach this machine and has the token" in err


@pytest.mark.slow
def test_tuning_a_gallery_image_writes_its_tuned_png_with_progress_and_refuses_bad_requests(tmp_path):
    from posedraw.models.clip import TINY, ClipSpec
    from posedraw.studio.tuning import Tuning

    studio = make_studio(tmp_path / "gallery")
    with TestClient(create_app(studio)) as plain:
        assert plain.get("/api/tune").json() == {"available": False, "clip": None}
        refused = plain.post("/api/tune", json={"image": "x.png", "prompts": ["red"]})
        assert refused.status_code == 409 and "--clip" in refused.json()["error"]
    studio.tuning = Tuning(ClipSpec(TINY, None, None))
    with TestClient(create_app(studio)) as client:
        assert client.get("/api/tune").json()["available"]
        drawn = client.post("/api/jobs", json={"pose": STANDING, "options": {"steps": 2}}).json()
        name = wait_finished(client, drawn["id"])["images"][0]
        job = client.post("/api/tune", json={"image": name, "prompts": ["colorful"], "steps": 3}).json()
        state = wait_finished(client, job["id"])
        assert state["status"] == "done" and state["kind"] == "tune" and state["progress"] == {"done": 3, "total": 3}
        tuned = state["images"][0]
        assert tuned == name.removesuffix(".png") + "_tuned.png"
        gallery = {item["name"]: item for item in client.get("/api/images").json()}
        assert gallery[tuned]["seed"] == gallery[name]["seed"]  # the tuned PNG keeps the drawing's recipe
        for body, words in [({"image": "../x.png", "prompts": ["a"]}, "plain PNG file name"),
                            ({"image": "missing.png", "prompts": ["a"]}, "not a drawing of the gallery"),
                            ({"image": name, "prompts": []}, "prompts"),
                            ({"image": name, "prompts": ["a"], "steps": 0}, "steps")]:  # fmt: skip
            response = client.post("/api/tune", json=body)
            assert 400 <= response.status_code < 500 and words in response.json()["error"]
    close_studio(studio)
