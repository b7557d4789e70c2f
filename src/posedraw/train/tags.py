"""The tag vocabulary a text-conditioned stage learns, built the same way for every stage."""

from __future__ import annotations

from collections.abc import Sequence

from posedraw.errors import ConfigError
from posedraw.models.text import tag_slots, tag_vocabulary


def fit_vocabulary(
    tag_lists: Sequence[Sequence[str]], min_count: int, max_tags: int, source: str
) -> tuple[list[str], int]:
    """The tags of `source` (named in the error) seen at least `min_count` times, and the tag tokens per
    prompt. An empty vocabulary is a config error (`text.min_count` too high for this data), found before
    any training."""
    vocabulary = tag_vocabulary(tag_lists, min_count)
    if not vocabulary:
        raise ConfigError(
            f"text.min_count: no tag of {source} is seen {min_count} times (lower it, or train with text.kind: none)"
        )
    return vocabulary, tag_slots(tag_lists, vocabulary, max_tags)


def require_tag_slots(max_tags: int) -> None:
    """A text config's `max_tags`: 0 (as many as one training sample has) or a count. A ValueError, which
    `posedraw.config.from_dict` reports as a ConfigError naming the section."""
    if max_tags < 0:
        raise ValueError(f"max_tags: expected 0 (from the data) or more, got {max_tags}")
