"""What every posedraw generator shares: one call shape, one output type, options it declares.

Both generators (`KeypointLDMPipeline`, `CodeTransformerPipeline`) are diffusers `DiffusionPipeline`s
saved with `model_index.json`, called as `pipe(poses, seeds=..., **options)`, and returning a `Drawing`.
Each declares its options (`OPTIONS`: name -> `Option`), so a caller such as `posedraw generate` can check
what a user asked for against the model it loaded, without knowing which kind of model that is: an option
the model does not take is one error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from diffusers import DiffusionPipeline

from posedraw.errors import PosedrawError
from posedraw.pose import Pose


@dataclass
class Drawing:
    """The result of a generator call, one row per (pose, seed)."""

    images: torch.Tensor  # (B, 3, H, W) in about [-1, 1]
    vq_latents: torch.Tensor  # (B, C, h, w) in the VQ's pre-quantization space: where CLIP tuning starts
    latents: torch.Tensor | None = None  # (B, C, h, w) the diffusion model's final latents
    codes: torch.Tensor | None = None  # (B, h, w) the transformer's code grid
    intermediates: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step or codes, images)


@dataclass(frozen=True)
class Option:
    """One option a generator takes: its command-line flag, default and what a valid value is."""

    flag: str
    default: Any
    expected: str  # e.g. "an integer >= 1", for the error message
    valid: Callable[[Any], bool] = lambda value: True
    choices: tuple[str, ...] = ()  # the values, when they are a list of names (for menus)

    def check(self, value: Any) -> None:
        if value is not None and not self.valid(value):
            raise PosedrawError(f"{self.flag}: expected {self.expected}, got {value!r}")


def at_least(low: float, integer: bool = False) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return False
        return value >= low

    return valid


#: the options of a model trained with text (`text_encoder`); an empty prompt is no prompt
TEXT_OPTIONS: Mapping[str, Option] = {
    "prompt": Option("--prompt", "", "a text", lambda v: isinstance(v, str)),
    "negative_prompt": Option("--negative-prompt", "", "a text", lambda v: isinstance(v, str)),
    "text_guidance": Option("--text-guidance", 1.0, "a number >= 0 (1 = off)", at_least(0)),
}


class DrawingPipeline(DiffusionPipeline):
    """A pose-conditioned generator (see the module docstring); subclasses set `KIND` and `OPTIONS`."""

    KIND: ClassVar[str] = "generator"
    OPTIONS: ClassVar[Mapping[str, Option]] = {}

    @property
    def takes_text(self) -> bool:
        return getattr(self, "text_encoder", None) is not None

    @property
    def options(self) -> dict[str, Option]:
        """The options this model takes: its kind's, and the text options when it was trained with text."""
        return {**self.OPTIONS, **(TEXT_OPTIONS if self.takes_text else {})}

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse options this model does not take or values outside their range, naming the flag."""
        takes = self.options
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if name in TEXT_OPTIONS and name not in takes:
                raise PosedrawError(f"{flag}: this model was trained without text (it draws from the pose alone)")
            if name not in takes:
                listed = ", ".join(o.flag for o in takes.values())
                raise PosedrawError(f"{flag}: a {self.KIND} model does not take it (it takes {listed})")
            takes[name].check(value)

    def resolved_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Every option with the value it takes in a call: the given one or the default."""
        return {name: options.get(name, option.default) for name, option in self.options.items()}

    def unknown_prompt_words(self, prompts: Sequence[str]) -> list[str]:
        """Words of the prompts this model's text encoder cannot use (reported once, then ignored)."""
        return self.text_encoder.unknown(prompts) if self.takes_text else []

    def check_pose(self, pose: Pose) -> None:
        """Raise PoseError if this model cannot draw `pose`."""
        raise NotImplementedError


def check_seeds(poses: list[Pose], seeds: list[int] | None) -> list[int]:
    """One seed per pose (default: 0, 1, 2, ...)."""
    seeds = list(seeds) if seeds is not None else list(range(len(poses)))
    if len(seeds) != len(poses):
        raise PosedrawError(f"seeds: expected one per pose ({len(poses)}), got {len(seeds)}")
    return seeds


__all__ = ["TEXT_OPTIONS", "Drawing", "DrawingPipeline", "Option", "at_least", "check_seeds"]
