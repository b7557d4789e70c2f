"""The studio against hostile web pages and hostile input: cross-site requests, DNS rebinding, the access
token, security headers, content types, deeply nested JSON, decompression bombs, stopping while a
progress stream is open."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import time
import zlib
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from posedraw.errors import PosedrawError
from posedraw.studio.app import create_app
from posedraw.studio.requests import DrawRequest, Limits, PreviewGate, RequestError, Superseded
from posedraw.studio.security import SECURITY_HEADERS, Access, resolve_token, start_urls
from tests.studio_helpers import STANDING, close_studio, free_port, make_studio, small_limits_client

JOB = {"pose": STANDING, "options": {"steps": 2}, "client": "sec"}
TOKEN = "correct-horse-battery-staple-42"


@pytest.fixture
def client(tmp_path):
    with small_limits_client(tmp_path) as test_client:
        yield test_client


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


def test_the_issue_s_cross_site_request_is_refused_and_queues_nothing(client):
    attack = {"Content-Type": "text/plain", "Origin": "http://evil.example", "Host": "evil.example:7860"}
    response = client.post("/api/jobs", content=json.dumps(JOB), headers=attack)
    assert "not an address this studio serves" in one_line_error(response, 421)
    # each of its parts alone is refused too, by the Origin, Sec-Fetch-Site and Content-Type checks
    from_evil = client.post("/api/jobs", json=JOB, headers={"Origin": "http://evil.example"})
    assert "origin 'http://evil.example'" in one_line_error(from_evil, 403)
    other_port = client.post("/api/jobs", json=JOB, headers={"Origin": "http://testserver:8888"})
    assert one_line_error(other_port, 403)
    cross_site = client.post("/api/jobs", json=JOB, headers={"Sec-Fetch-Site": "cross-site"})
    assert "Sec-Fetch-Site 'cross-site'" in one_line_error(cross_site, 403)
    same_site = client.delete("/api/jobs/x", headers={"Sec-Fetch-Site": "same-site"})
    assert one_line_error(same_site, 403)
    as_text = client.post("/api/jobs", content=json.dumps(JOB), headers={"Content-Type": "text/plain"})
    assert "expected Content-Type application/json, got 'text/plain'" in one_line_error(as_text, 415)
    assert client.get("/api/jobs").json() == []


def test_a_dns_rebinding_page_cannot_read_the_api_or_the_gallery(client):
    for path in ("/api/images", "/api/jobs", "/", "/openapi.json"):
        response = client.get(path, headers={"Host": "evil.example:7860"})
        assert "evil.example:7860" in one_line_error(response, 421)
    assert one_line_error(client.get("/api/images", headers={"Host": "testserver:8080"}), 421)


def test_the_page_s_own_requests_are_accepted(client):
    page = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    created = client.post("/api/jobs", json=JOB, headers=page)
    assert created.status_code == 202
    assert client.delete(f"/api/jobs/{created.json()['id']}", headers=page).status_code == 200
    assert client.post("/api/pose/import", json=STANDING, headers=page).status_code == 200
    assert client.post("/api/pose/import", json=STANDING).status_code == 200  # a script: no Origin at all
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/api/pose/import", content=json.dumps(STANDING), headers=charset).status_code == 200


def test_every_answer_carries_the_security_headers(client):
    answers = [client.get("/"), client.get("/static/app.js"), client.get("/api/skeleton"),
               client.get("/api/nothing"), client.get("/", headers={"Host": "evil.example"}),
               client.post("/api/jobs", content=b"x", headers={"Content-Type": "text/plain"})]  # fmt: skip
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.url, name)
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert client.get("/docs").status_code == 404  # its CDN script would need a weaker policy


def test_the_page_has_no_inline_script_or_style_the_policy_would_block():
    page = (Path(__file__).parents[1] / "src/posedraw/studio/static/index.html").read_text()
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    assert not [word for word in page.split() if word.startswith("on") and "=" in word]  # onclick=... handlers


@pytest.fixture
def token_client(tmp_path):
    access = Access(frozenset({"testserver:80"}), TOKEN, "posedraw-token-80")
    studio = make_studio(tmp_path / "gallery", access=access)
    with TestClient(create_app(studio), follow_redirects=False) as test_client:
        yield test_client
    close_studio(studio)


def test_a_token_is_needed_and_accepted_by_bearer_header_and_by_the_first_visit_s_cookie(token_client):
    assert "access token" in one_line_error(token_client.get("/api/skeleton"), 401)
    assert one_line_error(token_client.get("/"), 401)
    wrong = token_client.get("/api/skeleton", headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert one_line_error(wrong, 401)
    assert one_line_error(token_client.get("/?token=guess"), 401)
    bearer = token_client.get("/api/skeleton", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200 and bearer.json()["joints"][0] == "nose"
    visit = token_client.get(f"/?token={TOKEN}&x=1")
    assert visit.status_code == 303 and visit.headers["location"] == "/?x=1"  # the token leaves the address
    cookie = visit.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and cookie.startswith("posedraw-token-80=")
    assert token_client.get("/").status_code == 200  # the page and its requests carry the cookie now
    assert token_client.post("/api/pose/import", json=STANDING).status_code == 200


def test_the_first_visit_redirect_stays_on_the_studio(token_client):
    visit = token_client.get(f"//evil.example/?token={TOKEN}")
    assert (
        visit.status_code == 303 and visit.headers["location"].startswith("/") and "//" not in visit.headers["location"]
    )


def test_which_hosts_a_server_serves_and_when_it_needs_a_token():
    loopback = Access.serving("127.0.0.1", 7860)
    assert loopback.token is None
    for host in ("127.0.0.1:7860", "localhost:7860", "[::1]:7860", "LOCALHOST:7860"):
        assert loopback.host_allowed(host)
    for host in ("127.0.0.1:7861", "localhost", "evil.example:7860", "", "a b", "localhost.:7860"):
        assert not loopback.host_allowed(host)
    proxied = Access.serving("127.0.0.1", 7860, allow=["studio.example", "box:8000"])
    assert proxied.host_allowed("studio.example") and proxied.host_allowed("studio.example:443")
    assert proxied.host_allowed("box:8000") and not proxied.host_allowed("box:8001")
    with pytest.raises(PosedrawError, match="needs an access token"):
        Access.serving("0.0.0.0", 7860)
    with pytest.raises(PosedrawError, match="needs an access token"):
        Access.serving("192.168.1.5", 7860)
    with pytest.raises(PosedrawError, match="--allow-host: expected"):
        Access.serving("127.0.0.1", 7860, allow=["http://x/"])
    anywhere = Access.serving("0.0.0.0", 7860, token=TOKEN)
    assert anywhere.host_allowed("my-box.lan:7860") and anywhere.cookie == "posedraw-token-7860"
    assert anywhere.origin_allowed("http://my-box.lan:7860", "my-box.lan:7860")
    assert not anywhere.origin_allowed("http://evil.example:7860", "my-box.lan:7860")
    assert not loopback.origin_allowed("null", "127.0.0.1:7860")
    assert resolve_token("127.0.0.1", None) is None and len(resolve_token("0.0.0.0", None) or "") >= 32
    assert resolve_token("127.0.0.1", "auto") != resolve_token("127.0.0.1", "auto")
    with pytest.raises(PosedrawError, match="--token: expected"):
        resolve_token("127.0.0.1", "short")
    assert start_urls("::1", 80, "a-b") == ["http://[::1]:80/?token=a-b"]


def test_the_studio_command_prints_the_token_address_beyond_loopback(capsys, tmp_path, monkeypatch):
    from posedraw.studio import server
    from tests.cli_helpers import run_cli

    served = []
    monkeypatch.setattr(server, "serve", lambda app, host, port, jobs: served.append((app, host, port)))
    args = ["studio", "--out", tmp_path / "g", "--model", "builtin", "--port", "7999"]
    code, _, err = run_cli(capsys, *args, "--host", "0.0.0.0")
    assert code == 0 and served[-1][1:] == ("0.0.0.0", 7999)
    token = err.split("http://127.0.0.1:7999/?token=")[1].split()[0]
    with TestClient(served[-1][0], base_url="http://127.0.0.1:7999", follow_redirects=False) as client:
        assert client.get("/api/skeleton").status_code == 401
        assert client.get("/api/skeleton", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    code, _, err = run_cli(capsys, *args, "--token", "too-short")
    assert code == 2 and err.startswith("error: --token: expected") and len(served) == 1
    code, _, err = run_cli(capsys, *args, "--allow-host", "studio.example")
    assert code == 0 and "http://127.0.0.1:7999/ (" in err and "token" not in err
    with TestClient(served[-1][0], base_url="http://studio.example") as client:
        assert client.get("/api/skeleton").status_code == 200


def test_json_bodies_need_their_content_type_and_uploads_an_image_type(client):
    missing = client.post("/api/jobs", content=json.dumps(JOB))
    assert one_line_error(missing, 415) == "request body: expected Content-Type application/json, got none"
    form = client.post("/api/preview", data={"pose": "x"})
    assert "application/x-www-form-urlencoded" in one_line_error(form, 415)
    gif = client.post("/api/pose/detect", content=gif_bytes(), headers={"Content-Type": "image/gif"})
    assert "got 'image/gif'" in one_line_error(gif, 415)
    unlabelled = client.post(
        "/api/pose/detect", content=gif_bytes(), headers={"Content-Type": "application/octet-stream"}
    )
    assert one_line_error(unlabelled, 400) == "upload: expected a PNG, JPEG or WebP image"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/jobs", "[" * 100000 + "]" * 100000),
        ("/api/pose/import", "[" * 3000 + "]" * 3000),
        ("/api/preview", json.dumps({"pose": "@"}).replace('"@"', "[" * 990 + "]" * 990)),
        ("/api/pose/export", '{"people": [{"pose_keypoints_2d": ' + "[" * 990 + "]" * 990 + "}]}"),
    ],
)
def test_deeply_nested_json_is_a_400_and_the_connection_goes_on(client, path, body):
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert one_line_error(response, 400) == "request body: expected JSON nested at most 64 levels deep"
    assert client.post("/api/pose/import", json=STANDING).status_code == 200


def test_non_finite_json_numbers_are_refused(client):
    response = client.post(
        "/api/pose/import", content='{"nose": [NaN, 1]}', headers={"Content-Type": "application/json"}
    )
    assert "finite numbers" in one_line_error(response, 400)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header states `width` x `height` (and whose pixel data is one byte): what a
    decompression bomb looks like before it is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


def test_a_huge_image_gets_413_by_its_header_before_anything_decodes(client):
    response = client.post("/api/pose/detect", content=png_header_only(30000, 30000),
                           headers={"Content-Type": "image/png"})  # fmt: skip
    assert one_line_error(response, 413) == "upload: expected at most 90000 pixels, got 30000 x 30000"
    broken = client.post("/api/pose/detect", content=png_header_only(100, 100), headers={"Content-Type": "image/png"})
    assert one_line_error(broken, 400) == "upload: expected a PNG, JPEG or WebP image"  # its pixels are missing


class RefusingPipeline:
    """A pipeline whose drawing refuses its options, as a sampler refusing an option it does not take."""

    options: ClassVar[dict] = {}

    def __call__(self, *args, **kwargs):
        raise PosedrawError("--eta: the dpm++ sampler does not take it")


def test_a_preview_the_pipeline_refuses_is_a_400_not_a_500():
    request = DrawRequest("m", RefusingPipeline(), None, {"eta": 0.5}, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(RequestError) as info:
        PreviewGate().draw(request, "a", 1, Limits())
    assert info.value.status == 400 and str(info.value) == "--eta: the dpm++ sampler does not take it"


class CountingPipeline:
    options: ClassVar[dict] = {}

    def __call__(self, poses, seeds, **options):
        return type("Drawing", (), {"images": [torch.zeros(3, 4, 4)]})()


def test_the_preview_gate_remembers_a_bounded_number_of_clients_and_the_newest_still_wins():
    gate = PreviewGate(max_clients=8)
    request = DrawRequest("m", CountingPipeline(), None, {}, 0, 1)  # type: ignore[arg-type]
    for n in range(100):
        gate.draw(request, f"tab-{n}", 1, Limits())
    assert len(gate.latest) == 8 and "tab-99" in gate.latest and "tab-0" not in gate.latest
    gate.draw(request, "tab-99", 5, Limits())
    with pytest.raises(Superseded):
        gate.draw(request, "tab-99", 4, Limits())


def serve_a_never_ending_job(port: int, out: Path, ready) -> None:
    """The studio's server in a forked process: one job running forever, its id sent through `ready`."""
    import threading

    from posedraw.studio.jobs import StudioJob
    from posedraw.studio.server import serve

    studio = make_studio(out, access=Access.serving("127.0.0.1", port))
    never = threading.Event()
    job = studio.jobs.submit(StudioJob(client="t", total=1, work=lambda progress: never.wait()))
    while job.status != "running":
        never.wait(0.01)
    ready.send(job.id)
    serve(create_app(studio), "127.0.0.1", port, studio.jobs)


def test_sigterm_stops_the_server_promptly_while_a_progress_stream_is_attached(tmp_path):
    """A job that never ends, its event stream open: SIGTERM still stops the server (it used to wait for
    the job). The real server and signal, in a process of its own (forked: no second import of torch)."""
    import multiprocessing

    import httpx

    context = multiprocessing.get_context("fork")
    port, (receiver, sender) = free_port(), context.Pipe(duplex=False)
    process = context.Process(target=serve_a_never_ending_job, args=(port, tmp_path / "g", sender), daemon=True)
    process.start()
    try:
        assert receiver.poll(60), "the server process did not start its job"
        url = f"http://127.0.0.1:{port}/api/jobs/{receiver.recv()}"
        with httpx.Client(timeout=60) as client:
            for _ in range(600):  # until the server listens
                try:
                    client.get(url)
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            with client.stream("GET", f"{url}/events") as stream:
                lines = stream.iter_lines()  # kept: a dropped iterator would close the stream
                assert json.loads(next(lines).removeprefix("data: "))["status"] == "running"
                os.kill(process.pid, signal.SIGTERM)
                process.join(timeout=10)  # without the fix: it waits for the job, which never ends
                assert process.exitcode == -signal.SIGTERM  # stopped by the signal (uvicorn re-raises it)
                assert [line for line in lines if line] == []  # the stream ended, cleanly
    finally:
        process.kill()
        process.join()
