"""The config of a code transformer training run (`configs/transformer-*.yaml`): the network, how to train
it and the tags it learns. Values that would fail only once training has begun are refused at load time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from posedraw.models.transformer import TransformerConfig
from posedraw.train.checks import require_train_values
from posedraw.train.tags import require_tag_slots
from posedraw.train.validation import ValidationConfig


@dataclass(frozen=True)
class TransformerTrainConfig:
    batch_size: int = 16
    learning_rate: float = 4.5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 100_000
    pose_dropout: float = 0.1  # share of samples trained with the null pose (0: no guidance later)
    keep_prob: float = 1.0  # input corruption: each input code kept with this probability
    checkpoint_every: int = 1000
    num_workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        require_train_values(self)


@dataclass(frozen=True)
class TransformerTextConfig:
    kind: Literal["none", "tags"] = "none"
    min_count: int = 5  # a tag seen fewer times in the training data is not in the vocabulary
    max_tags: int = 0  # tag tokens per prompt; 0: the most known tags of one training sample
    tag_dropout: float = 0.1  # each tag of a training prompt dropped with this probability
    dropout: float = 0.1  # the whole prompt dropped (no text), drawn apart from the pose dropout

    def __post_init__(self) -> None:
        require_tag_slots(self.max_tags)


@dataclass(frozen=True)
class TransformerRunConfig:
    model: TransformerConfig = field(default_factory=TransformerConfig)
    train: TransformerTrainConfig = field(default_factory=TransformerTrainConfig)
    text: TransformerTextConfig = field(default_factory=TransformerTextConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)  # off unless poses are given
