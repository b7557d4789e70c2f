"""Per-person prompts bound to their person's pose, on both paths the UNet reads.

A scene's prompt as one bag of words says what is in the picture, not who has it: with two figures and
"red hair, blonde hair" the model cannot know which head is red. A per-person prompt is encoded on its
own (one vector per person: the mean of its tags' embeddings) and joined to that person only:
- cross-attention: the vector, projected to the token width, is added to each of the person's 17 joint
  tokens, so every key that says "a left wrist here" also says "of the one in the blue dress";
- spatial maps: the vector, projected to a few channels, is painted where the person's body is (its joint
  and limb maps, widened by a pixel), so every UNet position inside a figure reads that figure's own
  attributes and nothing of the others'.
People go in the pose encoder's slot order (left to right, `people_to_draw`), so each prompt follows its
own person wherever the pose file lists it. A person without a prompt gets the empty prompt's vector, the
one text dropout trains.

Training sees both ways of saying a scene's text (`training_texts`): per-person prompts with only the
scene's remaining tags in the whole-picture prompt, or every tag in one bag with empty per-person
prompts, so a model that learns the first still draws from a bag prompt as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from posedraw.models.text import TextEncoder, kept_tags, prompt_tags


def person_vectors(text_encoder: TextEncoder, slot_prompts: Sequence[Sequence[str]]) -> torch.Tensor:
    """(B, slots, dim): each slot's prompt as one vector of the text encoder (`TextEncoder.vectors`: the mean
    of its known tags' embeddings, CLIP's one token; the tags are an unordered set, so a mean loses nothing
    their order would carry)."""
    batch, slots = len(slot_prompts), len(slot_prompts[0])
    return text_encoder.vectors([text for prompts in slot_prompts for text in prompts]).unflatten(0, (batch, slots))


def body_masks(joints: torch.Tensor, limbs: torch.Tensor, widen: int = 1) -> torch.Tensor:
    """(B, P, h, w) where each person's body is: the maximum of its joint and limb maps (each (B, P, C, h,
    w)), widened by a `widen`-pixel max filter so that hair and clothes between the joints count too."""
    mask = torch.maximum(joints.amax(dim=2), limbs.amax(dim=2))
    if widen > 0:
        flat = F.max_pool2d(mask.flatten(0, 1)[:, None], 2 * widen + 1, stride=1, padding=widen)
        mask = flat[:, 0].unflatten(0, mask.shape[:2])
    return mask


class PersonBinding(torch.nn.Module):
    """The projections of a per-person prompt vector: to the person's joint tokens (`tokens`) and to
    `channels` map channels painted on its body (0: no map path).

    The token projection starts at zero, so a model fine-tuned with it (one trained without per-person
    prompts) starts as it was; the map projection starts random, since its channels are new UNet inputs
    whose weights a fine-tune starts at zero (one side of a product must be non-zero for either to learn)."""

    def __init__(self, dim: int, tokens: bool, channels: int) -> None:
        super().__init__()
        self.to_tokens = torch.nn.Linear(dim, dim) if tokens else None
        self.to_maps = torch.nn.Linear(dim, channels) if channels else None
        if self.to_tokens is not None:
            torch.nn.init.zeros_(self.to_tokens.weight)
            torch.nn.init.zeros_(self.to_tokens.bias)

    def tokens(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, P, dim) -> (B, P, 1, dim): added to each of the person's joint tokens."""
        return self.to_tokens(vectors)[:, :, None]

    def maps(self, vectors: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(B, P, dim) vectors and (B, P, h, w) body masks -> (B, channels, h, w): each person's projected
        vector where that person is (summed where people overlap)."""
        return torch.einsum("bpc,bphw->bchw", self.to_maps(vectors), masks.to(vectors.dtype))


def training_texts(
    tag_lists: Sequence[Sequence[str]],
    slot_prompts: Sequence[Sequence[str]],
    person_share: float,
    tag_dropout: float,
    dropout: float,
) -> tuple[list[list[str]], list[list[str]]]:
    """The whole-picture prompts and the per-person prompts (slot order) a training batch sees.

    A sample whose people have prompts is, with probability `person_share`, trained with them: its bag
    then keeps only the tags no person's prompt holds (the scene's: "2_figures"); otherwise all its tags go
    in the bag and every person's prompt is empty. Each tag is dropped with `tag_dropout`; with `dropout`
    the whole text (bag and people) is dropped together, the no-text condition guidance subtracts.
    Drawn from torch's global generator, so seeded runs repeat."""
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    bags, people = [], []
    for tags, prompts in zip(tag_lists, slot_prompts):
        named = {tag for prompt in prompts for tag in prompt_tags(prompt)}
        per_person = bool(named) and bool(torch.rand((), generator=generator) < person_share)
        in_bag = [t for t in prompt_tags(tags) if t not in named] if per_person else tags
        bag = kept_tags(in_bag, tag_dropout, generator)
        persons = [", ".join(kept_tags(p, tag_dropout, generator)) if per_person else "" for p in prompts]
        if torch.rand((), generator=generator) < dropout:
            bag, persons = [], [""] * len(prompts)
        bags.append(bag)
        people.append(persons)
    return bags, people


__all__ = ["PersonBinding", "body_masks", "person_vectors", "training_texts"]
