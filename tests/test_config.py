"""Configs that extend other configs (`extends:`): merged section by section, errors named."""

from __future__ import annotations

import pytest

from posedraw.config import load_config, read_config
from posedraw.errors import ConfigError
from posedraw.train.ldm import LDMRunConfig


def _write(folder, name: str, text: str):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_config_lays_its_keys_over_the_one_it_extends(tmp_path):
    _write(tmp_path, "base/model.yaml", "unet:\n  model_channels: 64\n  channel_mult: [1, 2, 4]\n"
           "train:\n  batch_size: 8\n  learning_rate: 1.0e-3\n")  # fmt: skip
    _write(tmp_path, "base/mid.yaml", "extends: model.yaml\ntrain:\n  learning_rate: 3.0e-4\n")
    top = _write(tmp_path, "top.yaml",
                 "extends: base/mid.yaml\nunet:\n  channel_mult: [1, 2]\ntrain:\n  batch_size: 64\n")  # fmt: skip
    assert read_config(top) == {"unet": {"model_channels": 64, "channel_mult": [1, 2]},
                                "train": {"batch_size": 64, "learning_rate": 3.0e-4}}  # fmt: skip
    config = load_config(LDMRunConfig, top)
    assert (config.unet.model_channels, config.unet.channel_mult) == (64, (1, 2))
    assert (config.train.batch_size, config.train.learning_rate) == (64, 3.0e-4)


def test_extends_errors_name_the_file_and_what_was_expected(tmp_path):
    missing = _write(tmp_path, "missing.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: no such config file"):
        load_config(LDMRunConfig, missing)
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    loop = _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: extends: b\.yaml is already in this chain of extends \(a loop\)"):
        load_config(LDMRunConfig, loop)
    odd = _write(tmp_path, "odd.yaml", "extends: [a.yaml]\n")
    with pytest.raises(ConfigError, match=r"odd\.yaml: extends: expected the path of another config file"):
        load_config(LDMRunConfig, odd)
    typo = _write(tmp_path, "typo.yaml", "extends: base.yaml\ntrain:\n  learning_rat: 1.0\n")
    _write(tmp_path, "base.yaml", "train:\n  batch_size: 4\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: train\.learning_rat: unknown key"):
        load_config(LDMRunConfig, typo)
