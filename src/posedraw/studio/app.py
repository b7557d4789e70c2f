"""posedraw studio: the HTTP API and the static page (FastAPI). The page uses exactly this API, so
scripts can too; it is described at /openapi.json (no /docs page: FastAPI's loads script from a CDN,
which the studio's Content-Security-Policy does not allow).

Errors: every bad request is a 4xx whose body is {"error": "<one line>"}; only a bug gives a 500.
Every request first passes the `StudioGuard` (security.py): Host, origin and token checks.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import JpegImagePlugin, PngImagePlugin, WebPImagePlugin
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from posedraw.data.poses import KINDS, example_pose
from posedraw.data.toy import make_toy_scene
from posedraw.errors import PosedrawError
from posedraw.pose import dump_pose, parse_pose, render_skeleton
from posedraw.pose.formats import loads_json
from posedraw.pose.render import JOINT_COLOURS, LIMB_COLOURS
from posedraw.pose.schema import FLIP_PERMUTATION, JOINTS, LIMB_INDICES
from posedraw.studio.api_schema import UPLOAD_TYPES, drawing_schema, json_body, pose_schema, tune_schema, upload_body
from posedraw.studio.gallery import BadName, image_path, list_images
from posedraw.studio.jobs import FINISHED, JobProgress, JobQueue, QueueFull, StudioJob
from posedraw.studio.requests import Limits, Models, PreviewGate, RequestError, draw_one, parse_request_pose
from posedraw.studio.security import Access, StudioGuard, json_error
from posedraw.studio.tuning import Tuning

STATIC = Path(__file__).parent / "static"
EXPORT_FORMATS = ("posedraw", "openpose", "coco")


@dataclass
class Studio:
    """The server's state: models, gallery folder, job queue, preview gate, and who may use it
    (`access`: the Host names served and the token; by default the loopback names of port 7860)."""

    models: Models
    out: Path
    jobs: JobQueue
    limits: Limits = field(default_factory=Limits)
    previews: PreviewGate = field(default_factory=PreviewGate)
    tuning: Tuning | None = None
    access: Access = field(default_factory=lambda: Access.serving("127.0.0.1", 7860))


JSON_TYPES = ("application/json",)
#: the formats a photo may be in, by their first bytes; read by their Pillow plugin directly, which reads
#: the header (the size) without Image.open's decompression-bomb check, so a huge image gets our 413
UPLOAD_FORMATS = (
    (lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"), PngImagePlugin.PngImageFile),
    (lambda head: head.startswith(b"\xff\xd8\xff"), JpegImagePlugin.JpegImageFile),
    (lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP", WebPImagePlugin.WebPImageFile),
)
#: what Pillow's readers raise on a malformed file (Image.open treats them all as "not this format")
BAD_IMAGE = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error)


def require_type(request: Request, accepted: tuple[str, ...], what: str) -> None:
    """Refuse (415) a body whose Content-Type is not one of `accepted`. Beyond saying what the body is,
    this keeps web pages out: a cross-site form or simple fetch can only send text/plain, form types."""
    declared = request.headers.get("content-type", "")
    if declared.split(";", 1)[0].strip().lower() not in accepted:
        got = repr(declared[:60]) if declared else "none"
        wanted = accepted[0] if len(accepted) == 1 else f"{', '.join(accepted[:-1])} or {accepted[-1]}"
        raise RequestError(f"{what}: expected Content-Type {wanted}, got {got}", status=415)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes whether or not it declares its length."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body: expected at most {limit} bytes, got {declared}", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body: expected at most {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    """The JSON body, read as pose files are (strict numbers, bounded nesting): never a RecursionError."""
    require_type(request, JSON_TYPES, "request body")
    body = await read_body(request, limit)
    try:
        return loads_json(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError("request body: expected JSON in UTF-8") from None
    except PosedrawError as exc:
        raise RequestError(f"request body: {exc}") from None


def presets() -> dict[str, Any]:
    """The example poses (examples/poses), as posedraw documents."""
    found = {kind: dump_pose(example_pose(kind)) for kind in KINDS}
    found["two_figures"] = dump_pose(make_toy_scene(2 * 10**9, 512, people=2).pose)
    return found


def skeleton_info() -> dict[str, Any]:
    """What the page needs to draw and mirror a pose exactly as posedraw does."""
    return {
        "joints": list(JOINTS),
        "limbs": LIMB_INDICES.tolist(),
        "limb_colours": [list(c) for c in LIMB_COLOURS],
        "joint_colours": [list(c) for c in JOINT_COLOURS],
        "mirror": FLIP_PERMUTATION.tolist(),
    }


def create_app(studio: Studio) -> FastAPI:
    app = FastAPI(title="posedraw studio", summary="Pose a character and draw it with posedraw's models.",
                  docs_url=None, redoc_url=None)  # fmt: skip
    app.add_middleware(StudioGuard, access=studio.access)
    app.state.studio = studio
    cached_presets = presets()
    example = cached_presets["standing"]
    pose_body = json_body(pose_schema(example), "a pose document")
    any_pose_body = json_body(pose_schema(example, any_format=True), "a pose document in any format posedraw reads")
    job_body = json_body(drawing_schema(studio.models, example, preview=False), "a drawing job")
    preview_body = json_body(drawing_schema(studio.models, example, preview=True), "a preview")

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return json_error(str(exc), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "bad request"
        if exc.status_code == 404:
            detail = f"not found: {request.url.path}"
        return json_error(detail, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return json_error(f"{where}: {first.get('msg', 'invalid')}", 422)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models", summary="The models this server draws with, their kinds and options")
    def models() -> list[dict[str, Any]]:
        return studio.models.describe()

    @app.get("/api/presets", summary="Example poses (posedraw JSON) by name")
    def get_presets() -> dict[str, Any]:
        return cached_presets

    @app.get("/api/skeleton", summary="Joint names, limbs, render colours and the mirror permutation")
    def get_skeleton() -> dict[str, Any]:
        return skeleton_info()

    @app.post(
        "/api/pose/import", summary="Any pose document posedraw reads -> posedraw JSON", openapi_extra=any_pose_body
    )
    async def import_pose(request: Request) -> dict[str, Any]:
        doc = await read_json(request, studio.limits.max_body)
        notes: list[str] = []
        try:
            pose = parse_pose(doc, notes=notes)
        except PosedrawError as exc:
            raise RequestError(f"pose file: {exc}") from None
        return {"pose": dump_pose(pose), "notes": notes}

    @app.post("/api/pose/export", summary="Pose -> posedraw, OpenPose or COCO JSON (?format=)", openapi_extra=pose_body)
    async def export_pose(request: Request, format: str = "posedraw") -> JSONResponse:
        if format not in EXPORT_FORMATS:
            raise RequestError(f"format: expected one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
        pose = parse_request_pose(await read_json(request, studio.limits.max_body))
        notes: list[str] = []
        doc = dump_pose(pose, format, notes=notes)
        return JSONResponse(doc, headers={"X-Posedraw-Notes": json.dumps(notes)})

    @app.post("/api/pose/skeleton", summary="Pose -> the skeleton PNG in the render colours", openapi_extra=pose_body)
    async def skeleton(request: Request) -> Response:
        pose = parse_request_pose(await read_json(request, studio.limits.max_body))
        if max(pose.width, pose.height) > 4096:
            raise RequestError("pose: canvas larger than 4096 pixels; scale it down to render")
        buffer = io.BytesIO()
        render_skeleton(pose).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    @app.post("/api/pose/detect", summary="A photo (the raw image bytes) -> the pose MediaPipe finds in it",
              openapi_extra=upload_body())  # fmt: skip
    async def detect(request: Request) -> dict[str, Any]:
        require_type(request, UPLOAD_TYPES, "upload")
        data = await read_body(request, studio.limits.max_upload)
        image = open_upload(data, studio.limits.max_pixels)
        return await run_in_threadpool(detect_in, image)

    @app.post("/api/jobs", status_code=202, summary="Queue a full-quality drawing job", openapi_extra=job_body)
    async def create_job(request: Request) -> dict[str, Any]:
        body = await read_json(request, studio.limits.max_body)
        drawing = studio.models.request(body)
        client = client_of(body)

        def work(progress: JobProgress) -> None:
            for index in range(drawing.count):
                progress.advance(draw_one(drawing, index, studio.out, f"studio-{progress.job.id}"))

        job = submit(studio, StudioJob(client=client, total=drawing.count, work=work))
        return {**job.public(), "notes": drawing.notes}

    @app.get("/api/tune", summary="Whether tuning is available here, and with which CLIP")
    def tune_info() -> dict[str, Any]:
        return {"available": studio.tuning is not None, "clip": None if studio.tuning is None else studio.tuning.name}

    @app.post("/api/tune", status_code=202, summary="Queue CLIP tuning of a gallery image towards prompts",
              openapi_extra=json_body(tune_schema(), "a tuning job"))  # fmt: skip
    async def create_tune(request: Request) -> dict[str, Any]:
        if studio.tuning is None:  # the server's set-up, not the request, is at fault: but no 5xx (not a bug)
            raise RequestError("tuning needs a CLIP: start the studio with --clip NAME (e.g. ViT-B-32)", status=409)
        body = await read_json(request, studio.limits.max_body)
        tuning = studio.tuning.request(body, studio.out, studio.models.pipelines)
        job = submit(studio, StudioJob(client=client_of(body), total=tuning.steps, work=tuning.work, kind="tune"))
        return job.public()

    @app.get("/api/jobs", summary="Jobs of one client (?client=), newest first")
    def list_jobs(client: str | None = None) -> list[dict[str, Any]]:
        jobs = [j for j in studio.jobs.snapshot() if client is None or j.client == client]
        return [j.public() for j in sorted(jobs, key=lambda j: -j.created)]

    @app.get("/api/jobs/{job_id}", summary="A job's status, progress and images")
    def job_status(job_id: str) -> dict[str, Any]:
        return find_job(studio, job_id).public()

    @app.delete("/api/jobs/{job_id}", summary="Cancel a job (a running one stops before its next image)")
    def cancel(job_id: str) -> dict[str, Any]:
        find_job(studio, job_id)
        job = studio.jobs.cancel(job_id)
        return job.public()  # type: ignore[union-attr]

    @app.get("/api/jobs/{job_id}/events", summary="Server-sent events: the job's state at every change")
    async def events(job_id: str) -> StreamingResponse:
        job = find_job(studio, job_id)

        async def stream():
            seen: tuple = ()
            while not studio.jobs.closed:  # a stopping server ends its streams instead of waiting for the job
                state = (job.status, job.done, len(job.images))
                if state != seen:
                    seen = state
                    yield f"data: {json.dumps(job.public())}\n\n"
                if job.status in FINISHED:
                    return
                await asyncio.to_thread(studio.jobs.wait_for_change, job, seen, 5.0)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/api/preview", summary="A fast drawing (few steps, one image) returned as PNG; newest wins",
              openapi_extra=preview_body)  # fmt: skip
    async def preview(request: Request) -> Response:
        body = await read_json(request, studio.limits.max_body)
        drawing = studio.models.request(body)
        client, seq = client_of(body), body.get("seq", 0)
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise RequestError(f"seq: expected an integer, got {seq!r}")
        quality = body.get("quality", "preview")
        if quality not in ("preview", "full"):
            raise RequestError(f"quality: expected preview or full, got {quality!r}")
        png = await run_in_threadpool(studio.previews.draw, drawing, client, seq, studio.limits, quality == "full")
        return Response(png, media_type="image/png", headers={"X-Preview-Seq": str(seq)})

    @app.get("/api/images", summary="The gallery: every image under --out with its recipe, newest first")
    def images() -> list[dict[str, Any]]:
        return list_images(studio.out)

    @app.get("/api/images/{name}", summary="One gallery PNG (its recipe is in its metadata)")
    def image(name: str) -> FileResponse:
        try:
            path = image_path(studio.out, name)
        except BadName as exc:
            raise RequestError(str(exc)) from None
        if not path.is_file():
            raise RequestError(f"image {name}: not in the gallery", status=404)
        return FileResponse(path, media_type="image/png", filename=name)

    return app


def client_of(body: dict[str, Any]) -> str:
    """The tab (or script) a request comes from: its jobs and previews are kept apart from others'."""
    return str(body.get("client", "api"))[:64]


def submit(studio: Studio, job: StudioJob) -> StudioJob:
    try:
        return studio.jobs.submit(job)
    except QueueFull as exc:
        raise RequestError(str(exc), status=429) from None


def find_job(studio: Studio, job_id: str) -> StudioJob:
    job = studio.jobs.jobs.get(job_id)
    if job is None:
        raise RequestError(f"job {job_id[:40]}: no such job", status=404)
    return job


def open_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """An uploaded photo as RGB uint8; refuses what is not a PNG, JPEG or WebP image, and (by the size
    its header states, before anything is decoded) images over `max_pixels`."""
    if not data:
        raise RequestError("upload: expected an image, got an empty body")
    opener = next((read for looks_like, read in UPLOAD_FORMATS if looks_like(data[:16])), None)
    if opener is None:
        raise RequestError("upload: expected a PNG, JPEG or WebP image")
    try:
        with opener(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise RequestError(f"upload: expected at most {max_pixels} pixels, got "
                                   f"{image.width} x {image.height}", status=413)  # fmt: skip
            return np.asarray(image.convert("RGB"))
    except BAD_IMAGE:
        raise RequestError("upload: expected a PNG, JPEG or WebP image") from None


def detect_in(image: np.ndarray) -> dict[str, Any]:
    from posedraw.pose.detect import detect_pose

    try:  # a missing MediaPipe is a DetectionError too, naming the extra to install
        pose = detect_pose(image, "upload")
    except PosedrawError as exc:
        raise RequestError(str(exc), status=422) from None
    return {"pose": dump_pose(pose), "width": image.shape[1], "height": image.shape[0]}


__all__ = ["EXPORT_FORMATS", "Studio", "create_app", "presets"]
