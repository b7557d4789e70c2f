"""The pose and text encoders a diffusion config asks for."""

from __future__ import annotations

from collections.abc import Sequence

from posedraw.models.conditioning import LegacyPoseEncoder, PlacedPoseEncoder, PoseEncoder
from posedraw.models.text import ClipTextEncoder, TagEncoder, TextEncoder, clip_text_dim
from posedraw.train.ldm.config import LDMRunConfig
from posedraw.train.tags import fit_vocabulary


def make_pose_encoder(config: LDMRunConfig) -> PoseEncoder:
    """The configured encoder; `legacy` is the original (1, 17) grid-token context (no null pose, which
    PoseConfig enforces)."""
    if config.pose.mode == "legacy":
        return LegacyPoseEncoder()
    return PlacedPoseEncoder(
        mode=config.pose.mode,
        dim=config.unet.context_dim,
        bands=config.pose.bands,
        latent_size=config.unet.sample_size,
        map_kind=config.pose.map_kind,
        sigma=config.pose.sigma,
        null_pose=config.pose.dropout > 0,
        max_people=config.pose.max_people,
        person_prompts=config.pose.person_prompts,
        person_channels=config.pose.person_channels,
        person_tokens=config.pose.person_tokens,
    )


def make_text_encoder(
    config: LDMRunConfig, tag_lists: Sequence[Sequence[str]], source: str = "the training data"
) -> TextEncoder | None:
    """The configured text encoder (None for `text.kind: none`); a tag vocabulary from `tag_lists` (the
    tags of `source`, named when it has too few)."""
    text, dim = config.text, config.unet.context_dim
    if text.kind == "none":
        return None
    if text.kind == "clip-text":
        width = clip_text_dim(text.clip_model, text.clip_pretrained, text.clip_weights)
        return ClipTextEncoder(text.clip_model, text.clip_pretrained, text.clip_weights, dim=dim, clip_dim=width)
    vocabulary, slots = fit_vocabulary(tag_lists, text.min_count, text.max_tags, source)
    return TagEncoder(vocabulary, dim=dim, max_tags=slots)
