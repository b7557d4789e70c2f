"""Training the pose-conditioned code transformer from the code cache.

Cross-entropy over the code range only; AdamW with the usual groups (no weight decay on biases, norms
and embeddings) and a linear warm-up; pose dropout (the whole prefix becomes null tokens and the pose maps
zeros) for guidance; optional input corruption (each input code kept with probability `keep_prob`, else a
random code, as taming-transformers does; the targets stay the true codes); with `text.kind: tags`, each
sample's tags as a prefix before the pose's (tag and prompt dropout drawn apart from the pose dropout).
Exports a
`CodeTransformerPipeline` folder (`model_index.json`, `transformer/`, `vq/`, `pose_encoder/`) and
`posedraw.json` (steps and config).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F

from posedraw.config import load_config, to_dict
from posedraw.data.latents import cache_stream, cache_tags, collate_cached, load_cache_index
from posedraw.devices import optimizer_options
from posedraw.errors import ConfigError
from posedraw.io import atomic_dir
from posedraw.models.code_conditioning import CodePoseEncoder, input_embeddings
from posedraw.models.text import tag_slots, tag_vocabulary, training_prompts
from posedraw.models.transformer import TransformerConfig, build_transformer, pose_encoder_for
from posedraw.models.vq import load_vq
from posedraw.pose import Pose
from posedraw.train.driver import PoseBatchTransfer, RunOptions, Stage, run_stage


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


@dataclass(frozen=True)
class TransformerTextConfig:
    kind: Literal["none", "tags"] = "none"
    min_count: int = 5  # a tag seen fewer times in the training data is not in the vocabulary
    max_tags: int = 0  # tag tokens per prompt; 0: the most known tags of one training sample
    tag_dropout: float = 0.1  # each tag of a training prompt dropped with this probability
    dropout: float = 0.1  # the whole prompt dropped (no text), drawn apart from the pose dropout


@dataclass(frozen=True)
class TransformerRunConfig:
    model: TransformerConfig = field(default_factory=TransformerConfig)
    train: TransformerTrainConfig = field(default_factory=TransformerTrainConfig)
    text: TransformerTextConfig = field(default_factory=TransformerTextConfig)


def fit_tags(config: TransformerRunConfig, codes: Path) -> tuple[TransformerRunConfig, list[str]]:
    """With `text.kind: tags`, the tag vocabulary of the code cache and the model's tag sizes from it."""
    if config.text.kind == "none":
        return config, []
    tag_lists = cache_tags(codes, "codes")
    vocabulary = tag_vocabulary(tag_lists, config.text.min_count)
    if not vocabulary:
        raise ConfigError(f"text.min_count: no tag of {codes} is seen {config.text.min_count} times")
    slots = tag_slots(tag_lists, vocabulary, config.text.max_tags)
    return replace(config, model=replace(config.model, max_tags=slots, num_tags=len(vocabulary))), vocabulary


def fit_to_cache(config: TransformerRunConfig, codes: Path) -> TransformerRunConfig:
    """Take the codebook size and grid side from the code cache; a config that states others is an error."""
    index = load_cache_index(codes)
    if not index.get("codes"):
        raise ConfigError(f"{codes}: the cache holds no codes (rebuild it with posedraw data cache-latents --codes)")
    num_codes, grid = int(index["num_codes"]), int(index["latent_shape"][-1])
    for name, have, want in (("num_codes", config.model.num_codes, num_codes), ("grid", config.model.grid, grid)):
        if have not in (0, want):
            raise ConfigError(f"model.{name}: the config says {have}, the code cache {codes} has {want}")
    return replace(config, model=replace(config.model, num_codes=num_codes, grid=grid))


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
    (B, h * w, width), teacher-forced on `inputs` (the codes themselves unless corrupted)."""
    targets, length = codes.flatten(1), prefix.shape[1]
    ids = torch.cat([prefix, (codes if inputs is None else inputs).flatten(1)[:, :-1]], dim=1)
    embeds = input_embeddings(model, ids, pose_maps, length)
    logits = model(inputs_embeds=embeds).logits[:, length - 1 :, :num_codes]
    return F.cross_entropy(logits.float().reshape(-1, num_codes), targets.reshape(-1))


def conditioning(
    encoder: CodePoseEncoder, poses: list[Pose], drop: torch.Tensor | None, device, prompts: list | None = None
):
    """Prefix ids and projected pose maps of a batch; the samples `drop`ped get the null pose (null pose
    ids, all-zero maps). The null pose takes part in every batch, so its parameters always get a gradient."""
    pose, maps = encoder.pose_prefix(poses).to(device), encoder.maps(poses)
    if drop is not None:
        pose = torch.where(drop[:, None], encoder.null_token, pose)
        maps = None if maps is None else torch.where(drop.cpu()[:, None, None], 0.0, maps)
    prefix = pose
    if encoder.takes_text:
        prefix = torch.cat([encoder.text_prefix(prompts or [[] for _ in poses]).to(device), pose], dim=1)
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
        self.log("loss", loss, prog_bar=True)
        return loss


def export_transformer(module: CodeTransformerModule, vq, folder: Path, steps: int) -> Path:
    """Write the pipeline folder `generate` loads (model_index.json, transformer/, vq/, pose_encoder/) and
    posedraw.json (steps and config)."""
    from posedraw.pipelines.code_transformer import CodeTransformerPipeline

    pipeline = CodeTransformerPipeline(
        copy.deepcopy(module.model).float().eval(), vq, copy.deepcopy(module.pose_encoder).float().eval()
    )
    with atomic_dir(folder) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        info = {"kind": "transformer", "steps": steps, "config": to_dict(module.config)}
        (tmp / "posedraw.json").write_text(json.dumps(info, indent=1) + "\n")
    return folder


def transformer_stage(config_path: Path, codes: Path, vq_dir: Path, out: Path) -> Stage:
    """The code transformer stage: cached codes in, a model folder out."""
    config, tags = fit_tags(fit_to_cache(load_config(TransformerRunConfig, config_path), codes), codes)
    vq = load_vq(vq_dir)
    if vq.config.num_vq_embeddings != config.model.num_codes:
        raise ConfigError(
            f"{vq_dir}: the VQ has {vq.config.num_vq_embeddings} codes, the cache {config.model.num_codes}"
        )
    train = config.train
    torch.manual_seed(train.seed)
    return Stage(
        name="transformer", config=config, module=CodeTransformerModule(config, tags),
        stream=cache_stream(codes, "codes", seed=train.seed), collate=collate_cached, batch_size=train.batch_size,
        num_workers=train.num_workers, max_steps=train.max_steps, checkpoint_every=train.checkpoint_every,
        seed=train.seed, export=lambda module, steps: export_transformer(module, vq, out / "model", steps),
    )  # fmt: skip


def train_transformer(config_path: Path, codes: Path, vq_dir: Path, options: RunOptions) -> Path | None:
    """Train (or resume) a code transformer on a code cache; export `<out>/model`."""
    return run_stage(transformer_stage(config_path, codes, vq_dir, options.out), options)


__all__ = ["CodeTransformerModule", "TransformerRunConfig", "held_out_loss", "train_transformer", "transformer_stage"]
