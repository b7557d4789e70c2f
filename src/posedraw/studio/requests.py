"""What the studio draws with: the models loaded once, requests checked against them, previews.

A request names a model, a pose document (any format posedraw reads) and options by their Python names
(`steps`, `guidance`, `prompt`, ...). Everything is checked before any drawing starts, with the same
checks as `posedraw generate`, plus the server's own limits (steps, images per job).

Per-person prompts travel on the pose (each person's `"prompt"` in posedraw JSON, as the page sends them),
not as options: a model not trained with them refuses them as a bad request, like any option it refuses.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posedraw.data.images import to_image
from posedraw.errors import PosedrawError
from posedraw.pipelines.drawing import DrawingPipeline, seed_run
from posedraw.pipelines.outputs import Job, Outputs, write_job
from posedraw.pose import Pose, parse_pose

#: options a request may not set: files or outputs of the command line, not drawing settings, and per-person
#: prompts, which a request gives on its pose (its people's "prompt")
NOT_FROM_REQUESTS = ("latents", "progress_row", "person_prompts", "person_negative_prompts")


class RequestError(PosedrawError):
    """A bad request: one line for the client, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_steps: int = 250
    max_images: int = 8
    preview_steps: int = 6  # few steps for the live preview; the full quality comes on release
    max_body: int = 2_000_000  # bytes of a JSON request
    max_upload: int = 10_000_000  # bytes of an uploaded photo
    max_pixels: int = 4096 * 4096


@dataclass
class DrawRequest:
    model: str
    pipeline: DrawingPipeline
    pose: Pose
    options: dict[str, Any]
    seed: int
    count: int
    notes: list[str] = field(default_factory=list)


def max_people(pipeline: DrawingPipeline) -> int:
    """How many people the model draws in one image (1 for models without per-person conditioning)."""
    return int(getattr(pipeline.pose_encoder.config, "max_people", 1) or 1)


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = body.get(name, default)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise RequestError(f"{name}: expected {getattr(kind, '__name__', 'a value')}, got {value!r}")
    return value


def parse_request_pose(doc: Any, field_name: str = "pose") -> Pose:
    """The pose of a request: a JSON document in any format posedraw reads."""
    if doc is None:
        raise RequestError(f"{field_name}: expected a pose document, got nothing")
    try:
        return parse_pose(doc)
    except PosedrawError as exc:
        raise RequestError(f"{field_name}: {exc}") from None


class Models:
    """The models given at start, loaded once; the first is the default."""

    def __init__(self, pipelines: dict[str, DrawingPipeline], limits: Limits) -> None:
        if not pipelines:
            raise ValueError("the studio needs at least one model")
        self.pipelines, self.limits = pipelines, limits
        for pipeline in pipelines.values():
            pipeline.set_progress_bar_config(disable=True)

    @property
    def default(self) -> str:
        return next(iter(self.pipelines))

    def describe(self) -> list[dict[str, Any]]:
        """Each model's kind and options with defaults, for the page's controls."""
        return [
            {"name": name, "kind": pipeline.KIND, "takes_text": pipeline.takes_text,
             "max_people": max_people(pipeline),
             "options": {key: {"flag": option.flag, "default": option.default, "expected": option.expected,
                               "choices": list(option.choices)}
                         for key, option in pipeline.options.items() if key not in NOT_FROM_REQUESTS}}
            for name, pipeline in self.pipelines.items()
        ]  # fmt: skip

    def request(self, body: dict[str, Any]) -> DrawRequest:
        """Check a drawing request completely (model, pose, options, seed, count) before any work."""
        if not isinstance(body, dict):
            raise RequestError("request: expected a JSON object with pose, model and options")
        unknown = set(body) - {"pose", "model", "options", "seed", "count", "client", "seq", "quality"}
        if unknown:
            raise RequestError(f"request: unknown field {sorted(unknown)[0]!r} (expected pose, model, options, seed, "
                               "count, client, seq, quality)")  # fmt: skip
        model = _field(body, "model", str, self.default)
        if model not in self.pipelines:
            raise RequestError(f"model: expected one of {', '.join(self.pipelines)}, got {model!r}")
        pipeline = self.pipelines[model]
        pose = parse_request_pose(body.get("pose"))
        try:
            pipeline.check_pose(pose)
        except PosedrawError as exc:
            raise RequestError(f"pose: {exc}") from None
        options = dict(_field(body, "options", dict, {}))
        for name in NOT_FROM_REQUESTS:
            if name in options:
                where = " (give each person's prompt in the pose)" if name.startswith("person_") else ""
                raise RequestError(f"options.{name}: not settable from the studio{where}")
        try:
            pipeline.check_options(options)
        except PosedrawError as exc:
            raise RequestError(f"options: {exc}") from None
        _check_person_prompts(pipeline, pose, options)
        steps = options.get("steps")
        if steps is not None and steps > self.limits.max_steps:
            raise RequestError(f"options: --steps: expected at most {self.limits.max_steps} here, got {steps}")
        seed = _field(body, "seed", int, 0)
        count = _field(body, "count", int, 1)
        if not 1 <= count <= self.limits.max_images:
            raise RequestError(f"count: expected 1 to {self.limits.max_images} images, got {count}")
        try:
            seed_run(seed, count, "seed", "count")
        except PosedrawError as exc:
            raise RequestError(str(exc)) from None
        notes = []
        texts = [options.get("prompt", ""), options.get("negative_prompt", ""), *pose.prompts]
        unknown_words = pipeline.unknown_prompt_words([text for text in texts if text])
        if unknown_words:
            notes.append(f"the model does not know {', '.join(unknown_words)}: ignored")
        return DrawRequest(model, pipeline, pose, options, seed, count, notes)


def _check_person_prompts(pipeline: DrawingPipeline, pose: Pose, options: dict[str, Any]) -> None:
    """The pose's per-person prompts through the model's own option check (refused by a model without them)."""
    if pose.prompts:
        try:
            pipeline.check_options({**options, "person_prompts": [pose.prompts]})
        except PosedrawError as exc:
            raise RequestError(f"pose: people's prompts: {str(exc).removeprefix('--prompt: ')}") from None


def draw_one(request: DrawRequest, index: int, out: Path, name: str) -> Path:
    """Draw image `index` of a request (seed + index) and write it with its recipe, atomically."""
    job = Job(request.pose, name, request.seed + index)
    result = request.pipeline([request.pose], seeds=[job.seed], **request.options)
    recorded = request.pipeline.resolved_options(request.options)
    return write_job(job, 0, result, recorded, request.model, out, Outputs())


def preview_options(request: DrawRequest, limits: Limits) -> dict[str, Any]:
    """The fast setting: few steps for a diffusion model (its sampler's default otherwise kept)."""
    options = dict(request.options)
    if "steps" in request.pipeline.options:
        options["steps"] = min(int(options.get("steps", request.pipeline.options["steps"].default)),
                               limits.preview_steps)  # fmt: skip
    return options


class Superseded(RequestError):
    def __init__(self) -> None:
        super().__init__("superseded by a newer preview of the same client", status=409)


class PreviewGate:
    """Newest request wins: one preview runs at a time, and a request that a newer one of the same client
    has overtaken while it waited is dropped (409) instead of drawn.

    The newest `seq` is kept for the `max_clients` clients seen last (every tab and script is a client, so
    an unbounded record would grow with each one); a client forgotten meanwhile is simply drawn.
    """

    def __init__(self, max_clients: int = 1024) -> None:
        self._run = threading.Lock()
        self._seen = threading.Lock()
        self.max_clients = max_clients
        self.latest: OrderedDict[str, int] = OrderedDict()

    def _record(self, client: str, seq: int) -> None:
        with self._seen:
            self.latest[client] = max(seq, self.latest.get(client, seq))
            self.latest.move_to_end(client)
            while len(self.latest) > self.max_clients:
                self.latest.popitem(last=False)

    def _overtaken(self, client: str, seq: int) -> bool:
        with self._seen:
            return self.latest.get(client, seq) != seq

    def draw(self, request: DrawRequest, client: str, seq: int, limits: Limits, full: bool = False) -> bytes:
        """The PNG of one drawing: with `full`, at the request's own settings (a joint was released)."""
        self._record(client, seq)
        with self._run:
            if self._overtaken(client, seq):
                raise Superseded()
            options = request.options if full else preview_options(request, limits)
            try:
                image = request.pipeline([request.pose], seeds=[request.seed], **options).images[0]
            except PosedrawError as exc:  # the request's fault (an option the sampler refuses), not a bug
                raise RequestError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        buffer = io.BytesIO()
        to_image(image).save(buffer, format="PNG")
        return buffer.getvalue()


__all__ = ["DrawRequest", "Limits", "Models", "PreviewGate", "RequestError", "Superseded", "draw_one",
           "parse_request_pose", "preview_options"]  # fmt: skip
