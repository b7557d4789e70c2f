"""The VQGAN LightningModule: one module, two optimizers, one autoencoder pass per step.

The original ran the autoencoder twice per step (once per optimizer). Here the generator step computes
the reconstruction once, and the discriminator step reuses it detached; the result is the same update.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from posedraw.devices import optimizer_options
from posedraw.losses.vqgan import VQGANLoss
from posedraw.models.vq import build_vq
from posedraw.train.vq.config import VQRunConfig


class VQGANModule(L.LightningModule):
    def __init__(self, config: VQRunConfig) -> None:
        super().__init__()
        self.config = config
        self.vq = build_vq(config.model)
        self.loss = VQGANLoss(config.loss, config.model.in_channels)
        if config.train.decoder_only:
            for part in (self.vq.encoder, self.vq.quant_conv, self.vq.quantize):
                part.requires_grad_(False)
        self.automatic_optimization = False
        # steps of the generator (Lightning's global_step counts every optimizer's steps); a host int, read
        # every step to decide on the discriminator, so that no step waits for the device to say it
        self.step = 0

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        """The step count is in the state dict as the tensor `step` (checkpoints of every version have it)."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "step"] = torch.tensor(self.step, dtype=torch.long)

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, metadata: Any, strict: bool, missing: list, *args: Any
    ) -> None:
        if prefix + "step" in state_dict:  # `state_dict` is load_state_dict's own copy
            self.step = int(state_dict.pop(prefix + "step"))
        else:
            missing.append(prefix + "step")  # as a missing buffer would be
        super()._load_from_state_dict(state_dict, prefix, metadata, strict, missing, *args)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr, betas = self.config.train.learning_rate, tuple(self.config.train.betas)
        fused = optimizer_options(self.device)
        trained = [p for p in self.vq.parameters() if p.requires_grad]
        generator = torch.optim.Adam(trained, lr=lr, betas=betas, **fused)
        discriminator = torch.optim.Adam(self.loss.discriminator.parameters(), lr=lr, betas=betas, **fused)
        return [generator, discriminator]

    def training_step(self, images: torch.Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        step = self.step
        out = self.vq(images)
        last_layer = self.vq.decoder.conv_out.weight
        g_loss, logs = self.loss.generator_loss(images, out.sample, out.commit_loss, step, last_layer)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        if self.loss.disc_active(step):
            d_loss, d_logs = self.loss.discriminator_loss(images, out.sample)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            logs.update(d_logs)
        self.step += 1
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=False)
        self.log("rec", logs["rec_loss"])  # not prog_bar: Lightning reads those to the host every step
