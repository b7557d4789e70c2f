"""Training the pose-conditioned diffusion model from a latent cache on CPU."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.latents import cache_dataset, read_cache
from posedraw.data.toy import ToyMaker
from posedraw.models.diffusion_math import snr_weights
from posedraw.models.vq import VQConfig, build_vq, save_vq
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.train.driver import RunOptions
from posedraw.train.ldm import train_ldm

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("ldm")
    build_dataset(root / "toy", ShardPlan(list(range(64)), 16), ToyMaker(32), 32, progress=False)
    torch.manual_seed(0)
    vq = build_vq(
        VQConfig(
            resolution=32,
            ch=16,
            ch_mult=(1, 2, 2),
            num_res_blocks=1,
            z_channels=3,
            embed_dim=3,
            n_embed=32,
            norm_num_groups=8,
        )
    ).eval()
    save_vq(vq, root / "vq")
    cache_dataset(root / "toy", vq, root / "cache", codes=False, progress=False)
    return root


def _config(tmp_path: Path, **train) -> Path:
    config = yaml.safe_load((REPO / "configs" / "ldm-toy.yaml").read_text())
    config["unet"].update(sample_size=8, model_channels=32, context_dim=32)
    config["diffusion"]["prediction"] = "epsilon"  # the training default (ldm-toy uses v): its loss falls visibly
    config["train"].update(batch_size=8, sample_every=1000, checkpoint_every=1000, sample_steps=3, **train)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _losses(run: Path) -> list[float]:
    rows = [r for p in sorted(run.glob("logs/*/metrics.csv")) for r in csv.DictReader(p.open())]
    return [float(r["loss"]) for r in rows if r.get("loss")]


@pytest.mark.slow
def test_toy_diffusion_training_lowers_the_loss_and_exports_a_pipeline(cache, tmp_path):
    model_dir = train_ldm(
        _config(tmp_path), cache / "cache", cache / "vq", RunOptions(out=tmp_path / "run", max_steps=80, progress=False)
    )
    losses = _losses(tmp_path / "run")
    assert len(losses) == 8 and sum(losses[-3:]) / 3 < 0.6 * sum(losses[:2]) / 2, losses
    pipeline = KeypointLDMPipeline.from_pretrained(model_dir)
    assert pipeline.pose_encoder.kind == "tokens+maps" and pipeline.pose_encoder.has_null
    pose = read_cache(cache / "cache", limit=1)[0]["pose"]
    assert pose.prompts  # the data set's figure tags: dropped for a model without per-person prompts
    [pose] = pipeline.drawable([pose])
    out = pipeline([pose, pose], seeds=[0, 1], steps=4, guidance=2.0)  # guidance works: trained with a null pose
    assert out.images.shape == (2, 3, 32, 32) and torch.isfinite(out.images).all()
    assert json.loads((model_dir / "posedraw.json").read_text())["steps"] == 80


def test_min_snr_weights():
    alphas = torch.tensor([0.99, 0.5, 0.01])
    t = torch.tensor([0, 1, 2])
    eps = snr_weights(alphas, t, 5.0, "epsilon")
    snr = alphas / (1 - alphas)
    assert torch.allclose(eps, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert torch.allclose(
        snr_weights(alphas, t, 5.0, "v_prediction"), torch.minimum(snr, torch.tensor(5.0)) / (snr + 1)
    )


@pytest.mark.slow
def test_train_ldm_command(cache, tmp_path, capsys):
    from .cli_helpers import run_cli

    code, out, err = run_cli(
        capsys,
        "train",
        "ldm",
        "--config",
        _config(tmp_path),
        "--latents",
        cache / "cache",
        "--vq",
        cache / "vq",
        "--out",
        tmp_path / "run",
        "--max-steps",
        "2",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "pipeline saved to" in out and (tmp_path / "run" / "model" / "model_index.json").is_file()
    code, _, err = run_cli(
        capsys,
        "train",
        "ldm",
        "--config",
        _config(tmp_path),
        "--latents",
        tmp_path / "nope",
        "--vq",
        cache / "vq",
        "--out",
        tmp_path / "run2",
    )
    assert code == 2 and "not a latent cache" in err


#: config keys of what a fine-tune may add to the model it starts from (the per-person prompts' binding)
ADDED_BY_FINE_TUNES = {"person_prompts", "person_channels", "person_tokens", "person_share"}


@pytest.mark.parametrize("name", ["ldm-toy-tags", "ldm-toy-tags-finish", "ldm-toy-tags-gpu", "ldm-toy-person-prompts"])
def test_builtin_stage_configs_describe_the_shipped_model(name):
    """`train ldm --init` carries weights from one built-in stage to the next, so each stage's config must
    describe the shipped model (UNet, pose and text encoders, diffusion) but for what a later fine-tune adds
    (the last stage's: exactly); only `train` may differ."""
    from posedraw.builtin import builtin_model
    from posedraw.config import load_config, to_dict
    from posedraw.train.ldm import LDMRunConfig

    stage = to_dict(load_config(LDMRunConfig, REPO / "configs" / f"{name}.yaml"))
    shipped = json.loads((builtin_model() / "posedraw.json").read_text())["config"]
    last = name == "ldm-toy-person-prompts"
    for section in ("unet", "pose", "text"):
        mine = {k: v for k, v in stage[section].items() if last or k not in ADDED_BY_FINE_TUNES}
        theirs = {k: v for k, v in shipped[section].items() if last or k not in ADDED_BY_FINE_TUNES}
        assert mine == theirs, section
    measured = {k: v for k, v in shipped["diffusion"].items() if k != "scale_factor"}  # set from the latents
    assert {k: v for k, v in stage["diffusion"].items() if k != "scale_factor"} == measured


def test_the_stage_reads_the_latent_cache_once_before_training(cache, tmp_path, monkeypatch):
    """The latents' scale, the validation poses and the tag vocabulary come from one pass: each shard of the
    cache is read once while the stage is assembled (the training stream reads it again, later)."""
    from posedraw.data.latents import load_cache_index
    from posedraw.data.stream import TarShards
    from posedraw.train.ldm import ldm_stage

    reads, read = [], TarShards.read
    monkeypatch.setattr(TarShards, "read", lambda self, shard: reads.append(shard) or read(self, shard))
    config = yaml.safe_load(_config(tmp_path).read_text())
    config["text"] = {"kind": "tags", "min_count": 2}
    (tmp_path / "tags.yaml").write_text(yaml.safe_dump(config))
    stage = ldm_stage(tmp_path / "tags.yaml", cache / "cache", cache / "vq", tmp_path / "run")
    assert sorted(reads) == list(range(len(load_cache_index(cache / "cache")["shards"])))
    latents = torch.stack([s["latent"] for s in read_cache(cache / "cache")])
    assert stage.config.diffusion.scale_factor == round(float(1 / latents.std()), 5)
    assert len(stage.callbacks[0].poses) == 4 and len(stage.module.text_encoder.config.vocabulary) >= 3
