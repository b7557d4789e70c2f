"""Text encoders: what to draw besides the pose, as cross-attention tokens that follow the pose's tokens.

Every encoder has the two steps of the pose encoders: `prepare` turns prompts into tensors (on the CPU),
`forward` turns those into (B, tokens, dim) context on the model's device; `null` is the context of no
text, which text dropout trains and text guidance subtracts. An empty prompt is no text.

- `tags` (`TagEncoder`): one learned embedding per tag of a vocabulary built from the training data's tags
  (those seen at least `min_count` times), saved with the model. A prompt is a list of tags, written
  "red hair, long hair" or as a Danbooru tag string "red_hair long_hair" (`prompt_tags`). The tokens carry
  no position and the ids are sorted, so the order of the tags does not matter. Unknown tags are reported
  and ignored.
- `clip-text` (`ClipTextEncoder`): a frozen open_clip text encoder (any model and weights, as for tuning);
  its pooled embedding, projected to the context width, is one token. The CLIP weights are not saved with
  the model, only which CLIP it is (`clip_model`, `clip_pretrained`, `clip_weights`) and the projection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

TextPrompt = str | Sequence[str]  # a prompt string, or a list of tags (training data); tuning has WeightedPrompt


def prompt_tags(prompt: TextPrompt) -> list[str]:
    """The tags of a prompt, in order, without repeats. Tags are separated by commas, words in a tag by
    spaces or underscores: "Red hair, long hair" -> [red_hair, long_hair]. A part holding an underscore is
    a Danbooru tag string, tags separated by spaces: "red_hair long_hair" -> [red_hair, long_hair]."""
    parts = prompt.split(",") if isinstance(prompt, str) else [str(tag) for tag in prompt]
    tags: list[str] = []
    for part in parts:
        words = part.strip().lower().split()
        tags += words if any("_" in word for word in words) else ["_".join(words)]
    return list(dict.fromkeys(tag for tag in tags if tag))


def tag_vocabulary(tag_lists: Iterable[Sequence[str]], min_count: int) -> list[str]:
    """The tags seen at least `min_count` times, sorted (a stable id per tag for the same data)."""
    counts = Counter(tag for tags in tag_lists for tag in prompt_tags(tags))
    return sorted(tag for tag, count in counts.items() if count >= min_count)


def kept_tags(tags: TextPrompt, tag_dropout: float, generator: torch.Generator) -> list[str]:
    """The tags of a training prompt, each kept with probability 1 - `tag_dropout` (one draw per tag)."""
    return [t for t in prompt_tags(tags) if torch.rand((), generator=generator) >= tag_dropout]


def training_prompts(tag_lists: Sequence[Sequence[str]], tag_dropout: float, dropout: float) -> list[list[str]]:
    """The prompts a training batch sees: each tag kept with probability 1 - `tag_dropout`, the whole list
    dropped (no text) with probability `dropout`. Drawn from torch's global generator (seeded runs repeat)."""
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    kept = [kept_tags(tags, tag_dropout, generator) for tags in tag_lists]
    return [tags if torch.rand((), generator=generator) >= dropout else [] for tags in kept]


def tag_slots(tag_lists: Sequence[Sequence[str]], vocabulary: Sequence[str], max_tags: int = 0) -> int:
    """Tag tokens per prompt: `max_tags`, or (0) the most known tags of one training sample."""
    known = set(vocabulary)
    most = max((len([t for t in prompt_tags(tags) if t in known]) for tags in tag_lists), default=1)
    return max_tags or max(1, most)


class TextEncoder(ModelMixin, ConfigMixin):
    """Base class: subclasses set `kind` and implement `prepare`, `forward`, `null` and `unknown`."""

    kind: str = "base"

    def prepare(self, prompts: Sequence[TextPrompt]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def null(self, batch: int) -> torch.Tensor:
        """The context of no text (an empty prompt)."""
        raise NotImplementedError

    def unknown(self, prompts: Sequence[TextPrompt]) -> list[str]:
        """Words of the prompts the encoder cannot use (for a warning); none for an open vocabulary."""
        return []

    def vectors(self, prompts: Sequence[TextPrompt]) -> torch.Tensor:
        """(B, dim): one vector per prompt, the mean of its tokens (what per-person prompts bind to a person)."""
        return self(**self.prepare(prompts)).mean(dim=1)


class TagEncoder(TextEncoder):
    """A learned, order-free tag encoder (see the module docstring); `max_tags` tokens, unused ones "no tag"."""

    kind = "tags"

    @register_to_config
    def __init__(self, vocabulary: Sequence[str] = (), dim: int = 64, max_tags: int = 16) -> None:
        super().__init__()
        # a ValueError, as PlacedPoseEncoder's: loading reports it as one CheckpointError naming the folder
        if max_tags < 1:
            raise ValueError(f"max_tags: expected at least 1, got {max_tags}")
        self.ids = {tag: i for i, tag in enumerate(vocabulary)}
        self.pad = len(self.ids)  # "no tag": fills unused slots; a prompt of no known tag is the null text
        # unit-scale like the pose encoder's state embedding: tokens of 0.02 scale get no attention at the start
        self.embedding = torch.nn.Embedding(len(self.ids) + 1, dim)

    def unknown(self, prompts: Sequence[TextPrompt]) -> list[str]:
        unknown = (tag for prompt in prompts for tag in prompt_tags(prompt) if tag not in self.ids)
        return list(dict.fromkeys(unknown))

    def prepare(self, prompts: Sequence[TextPrompt]) -> dict[str, torch.Tensor]:
        """(B, max_tags) ids: the known tags of each prompt, sorted, then "no tag"."""
        slots = self.config.max_tags
        ids = torch.full((len(prompts), slots), self.pad, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            known = sorted({self.ids[tag] for tag in prompt_tags(prompt) if tag in self.ids})[:slots]
            ids[row, : len(known)] = torch.tensor(known, dtype=torch.long)
        return {"tag_ids": ids}

    def forward(self, tag_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(tag_ids.to(self.embedding.weight.device))

    def null(self, batch: int) -> torch.Tensor:
        pad = torch.full((batch, self.config.max_tags), self.pad, dtype=torch.long)
        return self.forward(pad)

    def vectors(self, prompts: Sequence[TextPrompt]) -> torch.Tensor:
        """(B, dim): the mean embedding of each prompt's known tags, the "no tag" embedding for a prompt of none.
        Not the mean over every slot: a person's five tags among fifteen slots would differ from another's by
        a third of what their tags say, the rest the same "no tag" for everyone."""
        ids = self.prepare(prompts)["tag_ids"].to(self.embedding.weight.device)
        known = (ids != self.pad).unsqueeze(-1).to(self.embedding.weight.dtype)
        tokens = self.embedding(ids)
        mean = (tokens * known).sum(dim=1) / known.sum(dim=1).clamp_min(1)
        return torch.where(known.sum(dim=1) > 0, mean, tokens[:, 0])


class ClipTextEncoder(TextEncoder):
    """A frozen open_clip text encoder and a learned projection to one context token (module docstring)."""

    kind = "clip-text"

    @register_to_config
    def __init__(
        self,
        clip_model: str = "ViT-B-32",
        clip_pretrained: str | None = "openai",
        clip_weights: str | None = None,
        dim: int = 64,
        clip_dim: int = 512,
    ) -> None:
        super().__init__()
        self.projection = torch.nn.Linear(clip_dim, dim)
        self.null_token = torch.nn.Parameter(torch.randn(1, 1, dim) * 0.02)

    def _clip(self):
        """The frozen CLIP, loaded once per process and never part of this module's weights."""
        from posedraw.models.clip import ClipSpec, cached_clip

        config = self.config
        return cached_clip(ClipSpec(config.clip_model, config.clip_pretrained, config.clip_weights))

    @torch.no_grad()
    def prepare(self, prompts: Sequence[TextPrompt]) -> dict[str, torch.Tensor]:
        """(B, clip_dim) unit CLIP text embeddings and (B,) whether each prompt has any text."""
        texts = [", ".join(p) if not isinstance(p, str) else p.strip() for p in prompts]
        has_text = torch.tensor([bool(t) for t in texts])
        embedding = torch.zeros(len(texts), self.config.clip_dim)
        if has_text.any():
            written = [t for t in texts if t]
            embedding[has_text] = self._clip().encode_texts(written).float().cpu()
        return {"text_embedding": embedding, "has_text": has_text}

    def forward(self, text_embedding: torch.Tensor, has_text: torch.Tensor) -> torch.Tensor:
        device = self.null_token.device
        token = self.projection(text_embedding.to(device, self.projection.weight.dtype))[:, None]
        return torch.where(has_text.to(device)[:, None, None], token, self.null_token.to(token.dtype))

    def null(self, batch: int) -> torch.Tensor:
        return self.null_token.expand(batch, -1, -1)


def clip_text_dim(clip_model: str, clip_pretrained: str | None, clip_weights: str | None) -> int:
    """The width of a CLIP's text embedding (to size `ClipTextEncoder.clip_dim`)."""
    from posedraw.models.clip import ClipSpec, cached_clip

    return int(cached_clip(ClipSpec(clip_model, clip_pretrained, clip_weights)).encode_texts(["a"]).shape[-1])


__all__ = [
    "ClipTextEncoder",
    "TagEncoder",
    "TextEncoder",
    "clip_text_dim",
    "kept_tags",
    "prompt_tags",
    "tag_slots",
    "tag_vocabulary",
    "training_prompts",
]  # fmt: skip
