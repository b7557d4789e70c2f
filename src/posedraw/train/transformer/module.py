"""The code transformer LightningModule and its loss: the research code only.

Cross-entropy over the code range only; AdamW with the usual groups (no weight decay on biases, norms and
embeddings) and a linear warm-up; pose dropout (the whole prefix becomes null tokens and the pose maps
zeros) for guidance; optional input corruption (each input code kept with probability `keep_prob`, else a
random code, as taming-transformers does; the targets stay the true codes); with `text.kind: tags`, each
sample's tags as a prefix before the pose's (tag and prompt dropout drawn apart from the pose dropout).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from posedraw.data.device_cache import BatchPoses, prepared_poses
from posedraw.devices import optimizer_options
from posedraw.models.code_conditioning import CodePoseEncoder, placed_maps
from posedraw.models.text import training_prompts
from posedraw.models.transformer import CodeGPT, build_transformer, pose_encoder_for
from posedraw.pose import Pose
from posedraw.train.driver import PoseBatchTransfer
from posedraw.train.transformer.config import TransformerRunConfig


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices of the blocks; none on biases, layer norms and the token/position tables."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        embedding = name.endswith(("wte.weight", "wpe.weight"))
        (decay if param.ndim >= 2 and not embedding else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def sequence_loss(
    model: torch.nn.Module,
    num_codes: int,
    codes: torch.Tensor,
    prefix: torch.Tensor,
    pose_maps: torch.Tensor | None = None,
    inputs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the codes (B, h, w) given the prefix (B, tags + 17) and projected pose maps
    (B, h * w, width), teacher-forced on `inputs` (the codes themselves unless corrupted). The forward is
    the one sampling runs (`CodeGPT`), over the whole sequence; logits only where codes are predicted."""
    targets, length = codes.flatten(1), prefix.shape[1]
    ids = torch.cat([prefix, (codes if inputs is None else inputs).flatten(1)[:, :-1]], dim=1)
    logits = CodeGPT(model, num_codes).forward(ids, placed_maps(pose_maps, ids.shape[1], length), length - 1)
    return F.cross_entropy(logits.float().reshape(-1, num_codes), targets.reshape(-1))


def conditioning(
    encoder: CodePoseEncoder, poses: BatchPoses, drop: torch.Tensor | None, device, prompts: list | None = None
):
    """Prefix ids and projected pose maps of a batch (Pose objects, or tensors the device cache prepared),
    maps rendered on the device; the samples `drop`ped get the null pose (null pose ids, all-zero maps). The
    null pose takes part in every batch, so its parameters always get a gradient."""
    prepared = prepared_poses(encoder.prepare, poses, device)
    pose, maps = prepared["prefix"], encoder.render_maps(prepared["xy"], prepared["state"])
    if drop is not None:  # dropped on the device: no read of `drop` to the host
        pose = torch.where(drop[:, None], encoder.null_token, pose)
        maps = None if maps is None else torch.where(drop[:, None, None], 0.0, maps)
    prefix = pose
    if encoder.takes_text:
        prefix = torch.cat([encoder.text_prefix(prompts or [[] for _ in range(len(pose))]).to(device), pose], dim=1)
    return prefix, None if maps is None else encoder(maps)


@torch.no_grad()
def held_out_loss(
    pipeline, codes: torch.Tensor, poses: list[Pose], with_pose: bool = True, prompts: list | None = None
) -> float:
    """Cross-entropy (nats per code) of a trained pipeline on held-out samples, with their poses or with
    the null pose (and, for a model with tags, with `prompts` or no text)."""
    encoder = pipeline.pose_encoder.eval()
    drop = torch.full((len(poses),), not with_pose)
    prefix, pose_maps = conditioning(encoder, poses, drop, codes.device, prompts)
    return float(sequence_loss(pipeline.transformer.eval(), encoder.config.num_codes, codes, prefix, pose_maps))


class CodeTransformerModule(PoseBatchTransfer, L.LightningModule):
    def __init__(self, config: TransformerRunConfig, tags: list[str] | None = None) -> None:
        super().__init__()
        self.config = config
        self.model = build_transformer(config.model)
        self.pose_encoder = pose_encoder_for(config.model, null_pose=config.train.pose_dropout > 0, tags=tags or [])

    def configure_optimizers(self):
        train = self.config.train
        groups = decay_groups(self.model, train.weight_decay)
        groups[0]["params"] += [p for p in self.pose_encoder.parameters() if p.ndim >= 2]
        groups[1]["params"] += [p for p in self.pose_encoder.parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            groups, lr=train.learning_rate, betas=(0.9, 0.95), **optimizer_options(self.device)
        )
        warmup = max(1, train.warmup_steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        model_config, train = self.config.model, self.config.train
        codes = batch["codes"]
        drop = None
        if self.pose_encoder.config.null_pose:
            drop = torch.rand(len(codes), device=self.device) < train.pose_dropout
        prompts = None
        if self.pose_encoder.takes_text:
            prompts = training_prompts(batch["tags"], self.config.text.tag_dropout, self.config.text.dropout)
        prefix, pose_maps = conditioning(self.pose_encoder, batch["pose"], drop, self.device, prompts)
        inputs = None
        if train.keep_prob < 1:
            keep = torch.rand(codes.shape, device=self.device) < train.keep_prob
            inputs = torch.where(keep, codes, torch.randint_like(codes, model_config.num_codes))
        loss = sequence_loss(self.model, model_config.num_codes, codes, prefix, pose_maps, inputs)
        self.log("loss", loss)  # not prog_bar: Lightning reads those to the host every step
        return loss
