"""A tiny training world for the stage tests: toy figures, a VQ, caches and configs that train in seconds."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from posedraw.config import from_dict
from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.latents import cache_dataset
from posedraw.data.toy import ToyMaker
from posedraw.models.vq import VQConfig, build_vq, save_vq

TINY_VQ = {"resolution": 32, "ch": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 1, "z_channels": 3, "embed_dim": 3,
           "n_embed": 32, "norm_num_groups": 8, "attn_resolutions": []}  # fmt: skip
TINY_LDM = {
    "unet": {"sample_size": 8, "latent_channels": 3, "model_channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1,
             "attention_resolutions": [2], "num_head_channels": 16, "context_dim": 16},
    "pose": {"mode": "tokens+maps", "dropout": 0.2},
    "diffusion": {"prediction": "v_prediction", "min_snr_gamma": 5.0},
    "train": {"batch_size": 4, "learning_rate": 1e-3, "ema_decay": 0.9, "sample_every": 1000, "checkpoint_every": 1000,
              "sample_steps": 2, "num_workers": 0},
}  # fmt: skip
TINY_TRANSFORMER = {
    "model": {"pose_grid": 8, "layers": 2, "heads": 2, "width": 32, "dropout": 0.1},
    "train": {"batch_size": 4, "learning_rate": 1e-3, "warmup_steps": 3, "pose_dropout": 0.2, "keep_prob": 0.9,
              "checkpoint_every": 1000, "num_workers": 0},
}  # fmt: skip
TINY_VQ_RUN = {
    "model": TINY_VQ,
    "loss": {"perceptual_weight": 0.0, "disc_start": 2, "disc_layers": 2, "disc_channels": 8},
    "train": {"batch_size": 2, "sample_every": 1000, "checkpoint_every": 1000, "num_workers": 0},
}  # fmt: skip


def build_world(root: Path, per_shard: int = 12) -> Path:
    """24 toy figures at 32 px (shards of `per_shard`), a tiny VQ, and its latent + code cache."""
    build_dataset(root / "toy", ShardPlan(list(range(24)), per_shard), ToyMaker(32), 32, progress=False)
    torch.manual_seed(0)
    vq = build_vq(from_dict(VQConfig, TINY_VQ)).eval()
    save_vq(vq, root / "vq")
    cache_dataset(root / "toy", vq, root / "cache", progress=False)
    return root


def write_config(folder: Path, name: str, config: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tiny_text_config(person_prompts: bool) -> dict:
    """A tiny diffusion config with tags for up to 3 people on the built-in VQ's 16 x 16 latents."""
    return {
        "unet": {**TINY_LDM["unet"], "sample_size": 16},
        "pose": {"mode": "tokens+maps", "dropout": 0.2, "max_people": 3, "person_prompts": person_prompts},
        "text": {"kind": "tags"},
        "diffusion": {"scale_factor": 1.0},
    }


#: the tags of `tiny_text_model`
TINY_TAGS = ["blonde_hair", "long_hair", "red_hair", "smile"]


def tiny_text_model(folder: Path, person_prompts: bool) -> Path:
    """An untrained diffusion model with tags, for up to 3 people, on the built-in VQ (64 px drawings), with
    or without per-person prompts: what the per-person paths need, in a second, without training."""
    from posedraw.builtin import builtin_model
    from posedraw.models.text import TagEncoder
    from posedraw.models.vq import load_vq
    from posedraw.train.ldm import LatentDiffusionModule, LDMRunConfig, build_pipeline

    torch.manual_seed(0)
    config = from_dict(LDMRunConfig, tiny_text_config(person_prompts))
    module = LatentDiffusionModule(config, TagEncoder(TINY_TAGS, dim=16))
    build_pipeline(module, load_vq(builtin_model())).save_pretrained(folder)
    return folder
