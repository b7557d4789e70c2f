"""Per-person prompts as the command line takes them: "red hair, blue dress | blonde hair, green dress".

A `|` splits a prompt into one prompt per person, in the pose file's person order (the order
`posedraw pose show` lists); a prompt without `|` is the whole picture's, as it always was. Parts are
trimmed; an empty part is a person without a prompt, and a prompt whose parts are all empty is no prompt.
With per-person prompts the whole picture's prompt comes from `--scene-prompt` (both are used together).

Precedence: per-person prompts given on the command line (or to a pipeline call) replace those a pose file
carries; without them, the pose file's own (`Pose.prompts`) are used.
"""

from __future__ import annotations

from dataclasses import dataclass

from posedraw.errors import PosedrawError

#: what separates the prompts of the people of a pose
SEPARATOR = "|"


@dataclass(frozen=True)
class PromptRequest:
    """What a prompt option asks for: the whole picture's prompt and one prompt per person (() for none)."""

    scene: str = ""
    people: tuple[str, ...] = ()


def split_prompt(text: str, scene: str = "", option: str = "--prompt") -> PromptRequest:
    """`text` as the whole picture's prompt (no `|`) or as per-person prompts (with `|`), the latter with
    `scene` as the whole picture's prompt. `scene` next to a whole-picture `text` is ambiguous (which one
    is the scene?), so it is refused, naming `option`."""
    if SEPARATOR not in text:
        if text and scene:
            raise PosedrawError(f"--scene-prompt: goes with per-person prompts ({option} with |); "
                                f"without them give the whole picture's prompt in {option} alone")  # fmt: skip
        return PromptRequest(text or scene)
    people = tuple(part.strip() for part in text.split(SEPARATOR))
    return PromptRequest(scene, people if any(people) else ())


def check_person_count(people: tuple[str, ...], count: int, option: str, source: str) -> None:
    """Refuse per-person prompts whose number is not the number of people in `source` (a pose file, or a
    pipeline call's pose); the one count check of the command line and the pipelines."""
    if people and len(people) != count:
        raise PosedrawError(f"{option}: {len(people)} per-person prompts, but {source} holds "
                            f"{count} {'person' if count == 1 else 'people'}")  # fmt: skip


__all__ = ["SEPARATOR", "PromptRequest", "check_person_count", "split_prompt"]
