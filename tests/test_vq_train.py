"""Training a VQGAN first stage on CPU: the loss falls, runs resume, bad images are skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from posedraw.config import load_config
from posedraw.data.images import ImageFolder
from posedraw.errors import ConfigError
from posedraw.models.vq import build_vq, load_vq
from posedraw.train.driver import RunOptions
from posedraw.train.vq import VQRunConfig, train_vq

from .synthetic import write_shapes

REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, **overrides: dict) -> Path:
    """configs/vq-toy-f4.yaml with section overrides, written to tmp_path."""
    config = yaml.safe_load((REPO / "configs" / "vq-toy-f4.yaml").read_text())
    for section, values in overrides.items():
        config[section].update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    write_shapes(folder, 48)
    return folder


def _l1(vq, batch: torch.Tensor) -> float:
    with torch.no_grad():
        return float((vq(batch).sample - batch).abs().mean())


@pytest.mark.slow
def test_toy_f4_training_lowers_reconstruction_error(images, tmp_path):
    # LPIPS off to keep the test fast; the discriminator joins for the last 20 steps
    config = _config(tmp_path, loss={"perceptual_weight": 0.0, "disc_start": 80},
                     train={"batch_size": 4, "sample_every": 50, "checkpoint_every": 50})  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # as measured: another thread count rounds 100 GAN steps' sums differently
    try:
        model_dir = train_vq(config, images, RunOptions(out=tmp_path / "run", max_steps=100, progress=False))
    finally:
        torch.set_num_threads(threads)
    held_out = tmp_path / "held_out"
    write_shapes(held_out, 8, start=1000)
    folder = ImageFolder(held_out, 64)
    batch = torch.stack([folder[i] for i in range(8)])
    torch.manual_seed(0)
    untrained = build_vq(load_config(VQRunConfig, config).model).eval()
    trained = load_vq(model_dir)
    before, after = _l1(untrained, batch), _l1(trained, batch)
    assert after < 0.75 * before, (before, after)  # measured: 0.511 -> 0.347 on held-out images (100 steps)
    info = json.loads((model_dir / "posedraw.json").read_text())
    assert info["steps"] == 100 and info["config"]["model"]["ch"] == 32
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png")) == [
        "recon_0000050.png",
        "recon_0000100.png",
    ]
    logged = (tmp_path / "run" / "logs").rglob("metrics.csv")
    assert any("train/d_loss" in p.read_text() for p in logged)  # the discriminator did train


@pytest.mark.slow
def test_unreadable_images_are_skipped_and_listed(images, tmp_path):
    folder = tmp_path / "mixed"
    write_shapes(folder / "sub", 4)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image")
    config = _config(tmp_path, loss={"perceptual_weight": 0.0}, train={"batch_size": 2})
    train_vq(config, folder, RunOptions(out=tmp_path / "run", max_steps=2, progress=False))
    assert (tmp_path / "run" / "skipped_images.txt").read_text().strip() == str(folder / "broken.png")


def test_unknown_config_keys_are_named(tmp_path):
    path = _config(tmp_path, train={"learning_rat": 1.0})
    with pytest.raises(ConfigError, match=r"train\.learning_rat: unknown key"):
        load_config(VQRunConfig, path)
    path.write_text("model:\n  ch_mult: [1, two]\n")
    with pytest.raises(ConfigError, match=r"model\.ch_mult\[1\]: expected a whole number"):
        load_config(VQRunConfig, path)


@pytest.mark.parametrize("name", ["vq-f4", "vq-f8", "vq-f16", "vq-toy-f4", "vq-toy-f16"])
def test_shipped_configs_load_and_build(name):
    config = load_config(VQRunConfig, REPO / "configs" / f"{name}.yaml")
    factor = {"vq-f4": 4, "vq-f8": 8, "vq-f16": 16, "vq-toy-f4": 4, "vq-toy-f16": 16}[name]
    assert config.model.downsampling == factor
    if "toy" in name:
        vq = build_vq(config.model)
        x = torch.zeros(1, 3, config.model.resolution, config.model.resolution)
        assert vq.encode(x).latents.shape[-1] == config.model.resolution // factor
