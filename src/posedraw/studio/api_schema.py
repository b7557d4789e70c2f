"""The request bodies of the studio's API, as OpenAPI declarations.

The routes read their bodies themselves (so every bad body gets the studio's own one-line error, checked
exactly as `posedraw generate` checks its flags); these declarations only describe them, for /openapi.json,
for clients generated from it, and for the schema-driven fuzz test. They are deliberately loose where the
server's own checks are the contract: a pose is any JSON document posedraw reads, option ranges are each
model's (see GET /api/models).
"""

from __future__ import annotations

from typing import Any

from posedraw.pipelines.drawing import MAX_SEED
from posedraw.pose.core import MAX_PROMPT_CHARS
from posedraw.pose.schema import JOINTS
from posedraw.studio.requests import Models
from posedraw.studio.tuning import MAX_TUNE_STEPS

UPLOAD_TYPES = ("image/png", "image/jpeg", "image/webp", "application/octet-stream")


def posedraw_document() -> dict[str, Any]:
    """posedraw's own pose format (docs/poses.md), the one the page sends."""
    joint = {"type": "object", "additionalProperties": False, "required": ["x", "y"],
             "properties": {"x": {"type": "number"}, "y": {"type": "number"},
                            "state": {"enum": ["visible", "occluded", "absent"]}}}  # fmt: skip
    joints = {"type": "object", "properties": dict.fromkeys(JOINTS, joint), "additionalProperties": False,
              "minProperties": 1}  # fmt: skip
    prompt = {"type": "string", "maxLength": MAX_PROMPT_CHARS, "description": "what to draw for this person"}
    person = {"type": "object", "properties": {"joints": joints, "prompt": prompt}, "required": ["joints"],
              "additionalProperties": False}  # fmt: skip
    size = {"type": "integer", "minimum": 1}
    canvas = {"type": "object", "properties": {"width": size, "height": size}, "required": ["width", "height"],
              "additionalProperties": False}  # fmt: skip
    properties = {
        "schema": {"const": "posedraw.pose/1"},
        "canvas": canvas,
        "coordinates": {"enum": ["pixels", "normalized"]},
        "people": {"type": "array", "items": person, "minItems": 1},
    }
    description = "a pose in posedraw's format (as the page sends it); any format posedraw reads is taken"
    return {"type": "object", "description": description, "properties": properties,
            "required": ["schema", "canvas", "people"], "additionalProperties": False}  # fmt: skip


#: what the import route takes: any pose document (its point is the formats other than posedraw's)
ANY_POSE_DOCUMENT: dict[str, Any] = {
    "description": "a pose document in any format posedraw reads (posedraw, OpenPose, COCO, danbooru JSON)",
    "type": ["object", "array"],
}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """`openapi_extra` declaring a required JSON body (Content-Type application/json)."""
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def upload_body() -> dict[str, Any]:
    """`openapi_extra` declaring the raw bytes of a photo."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    content = {media: binary for media in UPLOAD_TYPES}
    return {"requestBody": {"required": True, "description": "a PNG, JPEG or WebP photo", "content": content}}


def _option_schema(default: Any, choices: list[Any], expected: str) -> dict[str, Any]:
    if choices:
        return {"enum": choices, "description": expected}
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
    kind = kinds.get(type(default))
    return {"description": expected} if kind is None else {"type": kind, "description": expected}


def options_schema(models: Models) -> dict[str, Any]:
    """Every option of every model by its Python name, typed by its default (ranges: GET /api/models)."""
    properties: dict[str, Any] = {}
    for model in models.describe():
        for name, option in model["options"].items():
            properties.setdefault(name, _option_schema(option["default"], option["choices"], option["expected"]))
    return {"type": "object", "properties": properties, "description": "options by their Python names"}


def pose_schema(example: Any, any_format: bool = False) -> dict[str, Any]:
    return {**(ANY_POSE_DOCUMENT if any_format else posedraw_document()), "example": example}


def drawing_schema(models: Models, example_pose: Any, preview: bool) -> dict[str, Any]:
    """A drawing request: a job's (POST /api/jobs) or a preview's (POST /api/preview)."""
    limits = models.limits
    properties: dict[str, Any] = {
        "pose": pose_schema(example_pose),
        "model": {"enum": list(models.pipelines), "description": "one of the models given at start"},
        "options": options_schema(models),
        "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
        "client": {"type": "string", "description": "the tab or script sending it (its jobs and previews)"},
    }
    if preview:
        properties["seq"] = {"type": "integer", "description": "newer previews of a client have larger seq"}
        properties["quality"] = {"enum": ["preview", "full"]}
    else:
        properties["count"] = {"type": "integer", "minimum": 1, "maximum": limits.max_images}
    return {"type": "object", "properties": properties, "required": ["pose"], "additionalProperties": False}


def tune_schema() -> dict[str, Any]:
    properties = {
        "image": {"type": "string", "description": "a gallery image name"},
        "prompts": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "'text' or 'text:weight'"},
        "steps": {"type": "integer", "minimum": 1, "maximum": MAX_TUNE_STEPS},
        "client": {"type": "string"},
    }  # fmt: skip
    return {"type": "object", "properties": properties, "required": ["image", "prompts"], "additionalProperties": False}


__all__ = ["UPLOAD_TYPES", "drawing_schema", "json_body", "pose_schema", "tune_schema", "upload_body"]
