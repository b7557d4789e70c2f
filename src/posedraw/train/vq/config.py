"""The config of a VQGAN training run (`configs/vq-*.yaml`): the network, its loss and how to train it."""

from __future__ import annotations

from dataclasses import dataclass, field

from posedraw.losses.vqgan import VQLossConfig
from posedraw.models.vq import VQConfig
from posedraw.train.checks import require_train_values


@dataclass(frozen=True)
class VQTrainConfig:
    batch_size: int = 8
    learning_rate: float = 3.6e-5
    betas: tuple[float, ...] = (0.5, 0.9)
    max_steps: int = 100_000
    sample_every: int = 1000
    checkpoint_every: int = 1000
    num_workers: int = 2
    seed: int = 0
    # train the decoder alone (encoder, quant_conv and codebook frozen): the latents and codes of diffusion
    # models and transformers trained on this VQ stay valid, and their drawings decode better (with --init)
    decoder_only: bool = False

    def __post_init__(self) -> None:
        require_train_values(self, ("sample_every",))
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ValueError(f"betas: expected two values in [0, 1) (Adam's), got {list(self.betas)}")


@dataclass(frozen=True)
class VQRunConfig:
    """A `configs/vq-*.yaml` file: the network, its loss and how to train it."""

    model: VQConfig = field(default_factory=VQConfig)
    loss: VQLossConfig = field(default_factory=VQLossConfig)
    train: VQTrainConfig = field(default_factory=VQTrainConfig)
