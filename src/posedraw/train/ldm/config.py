"""The config of a diffusion training run (`configs/ldm-*.yaml`): the network, its pose and text
conditioning, the noise schedule and how to train.

Values that would fail only once training has begun (a legacy encoder asked for a null pose, no tag slot)
are refused here, so `load_config` reports them as one ConfigError naming the field before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from diffusers import DDIMScheduler, DDPMScheduler

from posedraw.models.unet import UNetConfig
from posedraw.train.checks import require_train_values
from posedraw.train.tags import require_tag_slots
from posedraw.train.validation import ValidationConfig


@dataclass(frozen=True)
class PoseConfig:
    mode: Literal["tokens", "maps", "tokens+maps", "legacy"] = "tokens+maps"
    map_kind: Literal["heatmaps", "skeleton"] = "heatmaps"
    sigma: float = 1.0
    bands: int = 8
    dropout: float = 0.1  # probability of training a sample with the null pose (for guidance)
    max_people: int = 1  # people one pose may hold (token groups; the maps hold everyone)
    person_prompts: bool = False  # bind each person's prompt to its pose (models/person_text.py; needs text)
    person_channels: int = 4  # map channels that paint each person's prompt on its body (0: tokens only)
    person_tokens: bool = True  # each person's prompt added to its joint tokens (false: the map channels only)

    def __post_init__(self) -> None:
        if self.mode == "legacy" and self.dropout > 0:
            raise ValueError(f"dropout: the legacy encoder has no null pose; set it to 0 (got {self.dropout})")
        if self.mode == "legacy" and self.person_prompts:
            raise ValueError("person_prompts: the legacy encoder has no per-person tokens; use tokens+maps")
        if self.person_channels < 0:
            raise ValueError(f"person_channels: expected 0 or more, got {self.person_channels}")
        if self.max_people < 1:
            raise ValueError(f"max_people: expected at least 1, got {self.max_people}")


@dataclass(frozen=True)
class TextConfig:
    kind: Literal["none", "tags", "clip-text"] = "none"
    min_count: int = 5  # tags: a tag seen fewer times in the training data is not in the vocabulary
    max_tags: int = 0  # tags: tokens per prompt; 0: the most known tags of one training sample
    tag_dropout: float = 0.1  # tags: each tag of a training prompt dropped with this probability
    dropout: float = 0.1  # the whole prompt dropped (no text), drawn independently of the pose dropout
    pooled: bool = False  # also add the prompt's mean token to the UNet's timestep embedding
    person_share: float = 0.5  # with pose.person_prompts: samples trained with per-person prompts, not a bag
    clip_model: str = "ViT-B-32"  # clip-text: the open_clip model and its weights (as for tuning)
    clip_pretrained: str | None = "openai"
    clip_weights: str | None = None

    def __post_init__(self) -> None:
        require_tag_slots(self.max_tags)
        if not 0 <= self.person_share <= 1:
            raise ValueError(f"person_share: expected a number from 0 to 1, got {self.person_share}")


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    schedule: Literal["scaled_linear", "squaredcos_cap_v2"] = "scaled_linear"  # the original "linear" is scaled_linear
    prediction: Literal["epsilon", "v_prediction"] = "epsilon"
    min_snr_gamma: float = 0.0  # 0: plain MSE; 5 is the usual min-SNR setting
    scale_factor: float = 0.0  # latents are multiplied by this; 0: 1/std of the cached latents (scale_by_std)


@dataclass(frozen=True)
class LDMTrainConfig:
    batch_size: int = 16
    learning_rate: float = 2.0e-4
    weight_decay: float = 0.01
    max_steps: int = 100_000
    ema_decay: float = 0.999
    sample_every: int = 1000
    checkpoint_every: int = 1000
    sample_steps: int = 20
    num_workers: int = 2
    seed: int = 0
    binding_lr_scale: float = 1.0  # per-person binding projections: this times the learning rate (new parts)

    def __post_init__(self) -> None:
        require_train_values(self, ("sample_every", "sample_steps"))


@dataclass(frozen=True)
class LDMRunConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    text: TextConfig = field(default_factory=TextConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: LDMTrainConfig = field(default_factory=LDMTrainConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)  # off unless poses are given

    def __post_init__(self) -> None:
        if self.pose.person_prompts and self.text.kind == "none":
            raise ValueError("pose.person_prompts: per-person prompts need a text encoder; set text.kind")


def _schedule(config: DiffusionConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": config.timesteps,
        "beta_start": config.beta_start,
        "beta_end": config.beta_end,
        "beta_schedule": config.schedule,
        "prediction_type": config.prediction,
        "clip_sample": False,
    }


def noise_schedule(config: DiffusionConfig) -> DDPMScheduler:
    """The schedule training adds noise with."""
    return DDPMScheduler(**_schedule(config))


def sampling_scheduler(config: DiffusionConfig) -> DDIMScheduler:
    """The scheduler saved with the model: the training schedule (samplers are chosen per call)."""
    return DDIMScheduler(**_schedule(config), set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
