"""CLIP tuning from the studio's gallery: a gallery image, prompts and steps in, `<name>_tuned.png` out.

The CLIP is the one given at start (`posedraw studio --clip NAME`), loaded once; without it the studio
has no tuning. The image is tuned in the VQ of the model that drew it (its recipe names the model), from
the image itself (encoded by that VQ), exactly as `posedraw tune IMAGE` does; the tuned PNG keeps the
recipe of the drawing it came from, so it appears in the gallery next to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posedraw.errors import PosedrawError
from posedraw.models.clip import ClipSpec
from posedraw.studio.gallery import BadName, image_path, recipe
from posedraw.studio.requests import RequestError

if TYPE_CHECKING:
    from posedraw.pipelines.drawing import DrawingPipeline
    from posedraw.studio.jobs import JobProgress

MAX_TUNE_STEPS = 500


@dataclass
class TuneJob:
    steps: int
    work: Any  # Callable[[JobProgress], None]


class Tuning:
    """Tuning with one CLIP for the whole server."""

    def __init__(self, spec: ClipSpec) -> None:
        from posedraw.models.clip import cached_clip
        from posedraw.tuning.run import clip_name

        cached_clip(spec)  # load now: a missing CLIP is an error at start, not at the first click
        self.spec, self.name = spec, clip_name(spec)

    def request(self, body: Any, out: Path, pipelines: Mapping[str, DrawingPipeline]) -> TuneJob:
        """Check a tuning request completely before it is queued.

        `out` is the gallery folder (the image is read there, the tuned PNG written there) and `pipelines`
        the studio's loaded models by name (the image is tuned in the VQ of the model that drew it).
        """
        from posedraw.tuning.clip import TuneOptions
        from posedraw.tuning.prompts import parse_prompt
        from posedraw.tuning.run import TuneRequest

        if not isinstance(body, dict) or set(body) - {"image", "prompts", "steps", "client"}:
            raise RequestError("request: expected a JSON object with image, prompts and steps (and client)")
        name, prompts, steps = body.get("image"), body.get("prompts"), body.get("steps", 50)
        if not isinstance(name, str):
            raise RequestError(f"image: expected a gallery image name, got {name!r}")
        try:
            path = image_path(out, name)
        except BadName as exc:
            raise RequestError(str(exc)) from None
        found = recipe(path) if path.is_file() else None
        if found is None:
            raise RequestError(f"image {name}: not a drawing of the gallery", status=404)
        pipeline = pipelines.get(found["model"])
        if pipeline is None:
            raise RequestError(f"image {name}: drawn by {found['model']}, which this studio has not loaded")
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise RequestError("prompts: expected a list of texts ('text' or 'text:weight')")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_TUNE_STEPS:
            raise RequestError(f"steps: expected an integer from 1 to {MAX_TUNE_STEPS}, got {steps!r}")
        try:
            parsed = [parse_prompt(p) for p in prompts]
            options = TuneOptions(steps=steps)
            options.check()
        except PosedrawError as exc:
            raise RequestError(str(exc)) from None
        tune_request = TuneRequest(parsed, options, self.spec)

        def work(progress: JobProgress) -> None:
            from posedraw.tuning.files import load_tune_input, source_metadata
            from posedraw.tuning.run import tune_and_write

            latent = load_tune_input(path, pipeline.vq)
            source = [source_metadata(path)]
            step = lambda *_: progress.advance()  # noqa: E731
            [tuned] = tune_and_write(pipeline.vq, latent, tune_request, [path.stem], source, out, False, step)
            progress.add_image(tuned.path)

        return TuneJob(steps, work)


__all__ = ["MAX_TUNE_STEPS", "TuneJob", "Tuning"]
