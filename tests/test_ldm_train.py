"""Training the pose-conditioned diffusion model from a latent cache on CPU."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
import torch
import yaml

from posedraw.data.building import ShardPlan, build_dataset
from posedraw.data.latents import cache_dataset
from posedraw.data.toy import ToyMaker
from posedraw.models.vq import VQConfig, build_vq, save_vq
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.train import ldm as ldm_training
from posedraw.train.ldm import LatentDiffusionModule, LDMRunConfig, snr_weights, train_ldm
from posedraw.train.trainer import RunOptions

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


def test_toy_diffusion_training_lowers_the_loss_and_exports_a_pipeline(cache, tmp_path):
    model_dir = train_ldm(
        _config(tmp_path), cache / "cache", cache / "vq", RunOptions(out=tmp_path / "run", max_steps=80, progress=False)
    )
    losses = _losses(tmp_path / "run")
    assert len(losses) == 8 and sum(losses[-3:]) / 3 < 0.6 * sum(losses[:2]) / 2, losses
    pipeline = KeypointLDMPipeline.from_pretrained(model_dir)
    assert pipeline.pose_encoder.kind == "tokens+maps" and pipeline.pose_encoder.has_null
    from posedraw.data.latents import CachedLatents

    pose = next(iter(CachedLatents(cache / "cache", flip=0.0, rank=0, ranks=1)))["pose"]
    out = pipeline([pose, pose], seeds=[0, 1], steps=4, guidance=2.0)  # guidance works: trained with a null pose
    assert out.images.shape == (2, 3, 32, 32) and torch.isfinite(out.images).all()
    assert json.loads((model_dir / "posedraw.json").read_text())["steps"] == 80


def test_an_interrupted_run_continues_from_its_last_step(cache, tmp_path, monkeypatch):
    config = _config(tmp_path)
    options = RunOptions(out=tmp_path / "run", max_steps=12, progress=False)
    original = ldm_training.LatentDiffusionModule.training_step
    seen: list[int] = []

    def interrupt_once(self, batch, batch_idx):
        if self.global_step == 7 and -1 not in seen:
            seen.append(-1)
            raise KeyboardInterrupt
        seen.append(self.global_step)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ldm_training.LatentDiffusionModule, "training_step", interrupt_once)
    try:
        with pytest.raises(SystemExit):
            train_ldm(config, cache / "cache", cache / "vq", options)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    train_ldm(config, cache / "cache", cache / "vq", options)
    assert seen == [0, 1, 2, 3, 4, 5, 6, -1, 7, 8, 9, 10, 11]


def test_ema_weights_differ_from_live_weights_after_training():
    config = LDMRunConfig()
    module = LatentDiffusionModule(config)
    for _ in range(3):  # three "training steps" that each move every weight
        for p in module.unet.parameters():
            p.data.add_(1.0)
        module.ema.step(list(module.trainable()))
    unet, _ = module.ema_copies()
    live, averaged = next(module.unet.parameters()), next(unet.parameters())
    assert not torch.allclose(live, averaged)
    assert (live - averaged).abs().min() > 0.05  # the average lags behind every weight


def test_min_snr_weights():
    alphas = torch.tensor([0.99, 0.5, 0.01])
    t = torch.tensor([0, 1, 2])
    eps = snr_weights(alphas, t, 5.0, "epsilon")
    snr = alphas / (1 - alphas)
    assert torch.allclose(eps, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert torch.allclose(
        snr_weights(alphas, t, 5.0, "v_prediction"), torch.minimum(snr, torch.tensor(5.0)) / (snr + 1)
    )


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
