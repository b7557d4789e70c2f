"""What every posedraw generator shares: one call shape, one output type, options it declares.

Both generators (`KeypointLDMPipeline`, `CodeTransformerPipeline`) are diffusers `DiffusionPipeline`s
saved with `model_index.json`, called as `pipe(poses, seeds=..., **options)`, and returning a `Drawing`.
Each declares its options (`OPTIONS`: name -> `Option`, each with a finite range), so a caller such as
`posedraw generate` or the studio can check what a user asked for against the model it loaded, without
knowing which kind of model that is: `check_options` refuses an option the model does not take, a value out
of its range and a combination the model cannot draw (each pipeline adds its own, as diffusers'
`check_inputs` does), in one line naming the flag, before any work. `__call__` runs the same check first, so
no option error is left to surface halfway through a drawing; what it can still meet is a model that
produces non-finite numbers from valid options, which is a `SamplingError`, never an image.

Per-person prompts (`person_prompts`, `person_negative_prompts`: one text per person, "red hair | blonde
hair" on the command line) are text options too: given ones replace the pose's own (`Pose.prompts`), and
`check_options` refuses them for a model that was not trained with them (`takes_person_prompts`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from diffusers import DiffusionPipeline

from posedraw.errors import PosedrawError, SamplingError
from posedraw.pose import Pose
from posedraw.pose.prompts import check_person_count


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
        """Refuse a value out of range; None only stands for an option whose default is None (none)."""
        if (value is not None or self.default is not None) and not self.valid(value):
            raise PosedrawError(f"{self.flag}: expected {self.expected}, got {value!r}")


def number_in(low: float, high: float, integer: bool = False) -> Callable[[Any], bool]:
    """A check for a number in [low, high]: never a bool, nan or inf, and with `integer` never a float, so
    no value reaches the sampler that its arithmetic cannot hold."""

    def valid(value: Any) -> bool:
        kind = numbers.Integral if integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            return False
        if not integer and not math.isfinite(value):
            return False
        return low <= value <= high

    return valid


#: guidance scales (pose and text): 1 is off and the built-in models are measured at 1 to 4; 30 is far past
#: any useful setting and keeps a guided prediction (the scale times a difference of two predictions) far
#: from what float arithmetic overflows
MAX_GUIDANCE = 30.0
GUIDANCE_EXPECTED = f"a number from 0 to {MAX_GUIDANCE:g} (1 = off)"


def _texts(value: Any) -> bool:
    return not isinstance(value, str) and isinstance(value, Sequence) and all(isinstance(v, str) for v in value)


def _person_texts(value: Any) -> bool:
    """None (each pose's own), one text per person for every pose, or one such list per pose."""
    if value is None or _texts(value):
        return True
    return not isinstance(value, str) and isinstance(value, Sequence) and all(_texts(row) for row in value)


PERSON_EXPECTED = "one text per person (or one list of them per pose)"
#: the refusal of a model whose conditioning has no place for a prompt per person
PERSON_PROMPTS_REFUSED = ("this model was not trained with per-person prompts; give one prompt for the whole "
                          "picture (without |, and no \"prompt\" in the pose's people)")  # fmt: skip

#: the options of a model trained with text (`text_encoder`); an empty prompt is no prompt
TEXT_OPTIONS: Mapping[str, Option] = {
    "prompt": Option("--prompt", "", "a text", lambda v: isinstance(v, str)),
    "negative_prompt": Option("--negative-prompt", "", "a text", lambda v: isinstance(v, str)),
    "text_guidance": Option("--text-guidance", 1.0, GUIDANCE_EXPECTED, number_in(0, MAX_GUIDANCE)),
    "person_prompts": Option("--prompt", None, PERSON_EXPECTED, _person_texts),
    "person_negative_prompts": Option("--negative-prompt", None, PERSON_EXPECTED, _person_texts),
}
PERSON_OPTIONS = ("person_prompts", "person_negative_prompts")


@dataclass(frozen=True)
class CallText:
    """The text of a call, per pose: the whole picture's prompt and negative prompt, and per-person prompts
    and negative prompts (each a tuple of one text per person, or () for none)."""

    prompts: list[str]
    negatives: list[str]
    person_prompts: list[tuple[str, ...]]
    person_negatives: list[tuple[str, ...]]

    def posed(self, poses: Sequence[Pose], negative: bool = False) -> list[Pose]:
        """The poses carrying the per-person prompts drawn (where a pose encoder that takes them reads them),
        or with `negative` the per-person negative prompts (the branches without text bind those)."""
        texts = self.person_negatives if negative else self.person_prompts
        return [pose.replace(prompts=people) for pose, people in zip(poses, texts)]


#: seeds seed torch's generators (64-bit); the diffusion model also uses seed + 1
MAX_SEED = 2**63 - 2


class DrawingPipeline(DiffusionPipeline):
    """A pose-conditioned generator (see the module docstring); subclasses set `KIND` and `OPTIONS`."""

    KIND: ClassVar[str] = "generator"
    OPTIONS: ClassVar[Mapping[str, Option]] = {}

    @property
    def takes_text(self) -> bool:
        return getattr(self, "text_encoder", None) is not None

    @property
    def takes_person_prompts(self) -> bool:
        """Whether the model binds a prompt to each person (a diffusion model whose pose encoder does: see
        KeypointLDMPipeline; never a code transformer)."""
        return False

    @property
    def options(self) -> dict[str, Option]:
        """The options this model takes: its kind's, and the text options when it was trained with text."""
        return {**self.OPTIONS, **(TEXT_OPTIONS if self.takes_text else {})}

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse options this model does not take or values outside their range, naming the flag.

        Subclasses extend it with the combinations their model refuses (a sampler without eta, guidance
        without a null pose, ...), so that one call checks everything before any work."""
        takes = self.options
        for name in PERSON_OPTIONS:
            value = options.get(name)
            if _person_texts(value) and _any_text(value) and not self.takes_person_prompts:
                raise PosedrawError(f"{TEXT_OPTIONS[name].flag}: {PERSON_PROMPTS_REFUSED}")
        for name, value in options.items():
            flag = TEXT_OPTIONS[name].flag if name in TEXT_OPTIONS else "--" + name.replace("_", "-")
            if name in TEXT_OPTIONS and name not in takes:
                raise PosedrawError(f"{flag}: this model was trained without text (it draws from the pose alone)")
            if name not in takes:
                listed = ", ".join(o.flag for o in takes.values())
                raise PosedrawError(f"{flag}: a {self.KIND} model does not take it (it takes {listed})")
            takes[name].check(value)

    def drawable(self, poses: Sequence[Pose]) -> list[Pose]:
        """The poses as this model draws them from a data set: the per-person prompts data sets store (each
        figure's tags) kept for a model that takes them and dropped for one that would refuse them, so
        training's sample grids and validation draw any model's held-out poses."""
        return list(poses) if self.takes_person_prompts else [pose.replace(prompts=()) for pose in poses]

    def resolved_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Every option with the value it takes in a call: the given one or the default."""
        return {name: options.get(name, option.default) for name, option in self.options.items()}

    def unknown_prompt_words(self, prompts: Sequence[str]) -> list[str]:
        """Words of the prompts this model's text encoder cannot use (reported once, then ignored)."""
        return self.text_encoder.unknown(prompts) if self.takes_text else []

    def check_pose(self, pose: Pose) -> None:
        """Raise PoseError if this model cannot draw `pose`."""
        raise NotImplementedError

    def check_call(
        self, poses: Sequence[Pose], seeds: Sequence[int] | None, options: dict[str, Any]
    ) -> tuple[list[int], CallText]:
        """What `__call__` checks before any work: seeds, prompts (one for all or one per pose), per-person
        prompts (the given ones, else each pose's own) and, through `check_options`, every option (so a pose's
        own per-person prompts meet the same refusal as given ones). Returns the seeds and the text per pose."""
        seeds = check_seeds(list(poses), seeds)
        prompts = per_pose(options.pop("prompt", ""), len(poses), "prompt")
        negatives = per_pose(options.pop("negative_prompt", ""), len(poses), "negative_prompt")
        people = person_prompts_per_pose(options.pop("person_prompts", None), poses, "person_prompts")
        negative_people = person_prompts_per_pose(options.pop("person_negative_prompts", None), poses,
                                                  "person_negative_prompts")  # fmt: skip
        text = {"prompt": next((p for p in prompts if p), ""), "negative_prompt": next((p for p in negatives if p), ""),
                "text_guidance": options.pop("text_guidance", 1.0), "person_prompts": people,
                "person_negative_prompts": negative_people}  # fmt: skip
        # a model without text is asked about the text options only when they are set
        options.update({k: v for k, v in text.items() if self.takes_text or _any_text(v) or
                        (k == "text_guidance" and v != TEXT_OPTIONS[k].default)})  # fmt: skip
        self.check_options(options)
        return seeds, CallText(prompts, negatives, people, negative_people)


def finite_images(images: torch.Tensor) -> torch.Tensor:
    """The decoded images, unless they hold inf or nan (which a PNG would show as black): SamplingError."""
    if not torch.isfinite(images).all():
        raise SamplingError("decoding: the VQ decoder produced non-finite values (inf or nan), so no image was "
                            "made; the model folder's vq may be damaged")  # fmt: skip
    return images


def check_seed(seed: Any, name: str = "--seed") -> int:
    """A seed torch's generators take: a whole number in [0, MAX_SEED]."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise PosedrawError(f"{name}: expected a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def seed_run(first: Any, count: int, seed_name: str = "--seed", count_name: str = "--num") -> list[int]:
    """The seeds of `count` images from `first` (first, first + 1, ...), each one a generator takes.

    The command line (`--seed`, `--num`) and the studio (`seed`, `count`) share it. The last seed is checked
    too: a first seed near the top of the range leaves no room for more images, which is the count's fault,
    so the error names both fields."""
    first = check_seed(first, seed_name)
    check_seed(first + count - 1, f"{count_name} (the last seed, {seed_name} + {count_name} - 1)")
    return list(range(first, first + count))


def check_seeds(poses: list[Pose], seeds: Sequence[int] | None) -> list[int]:
    """One seed per pose (default: 0, 1, 2, ...), each one a generator takes."""
    seeds = list(seeds) if seeds is not None else list(range(len(poses)))
    if len(seeds) != len(poses):
        raise PosedrawError(f"seeds: expected one per pose ({len(poses)}), got {len(seeds)}")
    return [check_seed(s, "seeds") for s in seeds]


def per_pose(prompt: str | Sequence[str], batch: int, name: str) -> list[str]:
    """One prompt per pose: a string is everyone's."""
    prompts = [prompt] * batch if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise PosedrawError(f"{name}: expected a text or one text per pose")
    if len(prompts) != batch:
        raise PosedrawError(f"{name}: expected one prompt or one per pose ({batch}), got {len(prompts)}")
    return list(prompts)


def _any_text(value: Any) -> bool:
    """Whether a prompt, a list of per-person prompts or a list of such lists says anything."""
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, Sequence) and any(_any_text(v) for v in value)


def person_prompts_per_pose(given: Any, poses: Sequence[Pose], name: str) -> list[tuple[str, ...]]:
    """One tuple of per-person prompts per pose, () for none: `given` (one text per person for every pose,
    or one list per pose) wins; where it says nothing, `person_prompts` falls back to each pose's own."""
    if not _person_texts(given):
        raise PosedrawError(f"{name}: expected {PERSON_EXPECTED}, got {type(given).__name__}")
    own = [pose.prompts if name == "person_prompts" else () for pose in poses]
    if given is None or not _any_text(given):
        return own
    rows = [given] * len(poses) if _texts(given) else list(given)
    if len(rows) != len(poses):
        raise PosedrawError(f"{name}: expected one list per pose ({len(poses)}), got {len(rows)}")
    found = []
    for index, (row, pose, fallback) in enumerate(zip(rows, poses, own)):
        row = tuple(row) if _any_text(row) else ()
        check_person_count(row, pose.num_people, name, f"pose {index}")
        found.append(row or fallback)
    return found


__all__ = [
    "GUIDANCE_EXPECTED", "MAX_GUIDANCE", "MAX_SEED", "PERSON_OPTIONS", "PERSON_PROMPTS_REFUSED", "TEXT_OPTIONS",
    "CallText", "Drawing", "DrawingPipeline", "Option", "check_seed", "check_seeds", "finite_images", "number_in",
    "per_pose", "person_prompts_per_pose", "seed_run",
]  # fmt: skip
