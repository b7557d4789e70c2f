"""Train configs that cannot train are one line (`error: ...`, exit 2) naming the file and field, before
any data is read or any run folder is written."""

from __future__ import annotations

import pytest

from posedraw.builtin import builtin_model

from .cli_helpers import run_cli
from .tiny_world import TINY_LDM, TINY_TRANSFORMER, TINY_VQ_RUN, write_config

CONFIGS = {"ldm": TINY_LDM, "transformer": TINY_TRANSFORMER, "vq": TINY_VQ_RUN}


def _train(capsys, stage: str, config, data, out) -> tuple[int, str]:
    """`posedraw train STAGE` on `data` (the latent cache, code cache or images) with the built-in VQ."""
    flag = {"ldm": "--latents", "transformer": "--codes", "vq": "--data"}[stage]
    vq = [] if stage == "vq" else ["--vq", builtin_model()]
    code, _, err = run_cli(capsys, "train", stage, "--config", config, flag, data, *vq, "--out", out,
                           "--device", "cpu", "--max-steps", "1")  # fmt: skip
    return code, err


MORE_TAGS = "expected 0 (from the data) or more"


@pytest.mark.parametrize(
    ("stage", "section", "values", "message"),
    [
        ("ldm", "pose", {"mode": "legacy"}, "pose: dropout: the legacy encoder has no null pose; set it to 0 "
                                            "(got 0.1)"),
        ("ldm", "pose", {"max_people": 0}, "pose: max_people: expected at least 1, got 0"),
        ("ldm", "text", {"kind": "tags", "max_tags": -1}, f"text: max_tags: {MORE_TAGS}, got -1"),
        ("ldm", "train", {"checkpoint_every": 0}, "train: checkpoint_every: expected at least 1, got 0"),
        ("transformer", "train", {"batch_size": 0}, "train: batch_size: expected at least 1, got 0"),
        ("transformer", "text", {"kind": "tags", "max_tags": -2}, f"text: max_tags: {MORE_TAGS}, got -2"),
        ("vq", "train", {"sample_every": 0}, "train: sample_every: expected at least 1, got 0"),
        ("ldm", "train", {"learning_rate": -1e-4}, "train: learning_rate: expected 0 or more, got -0.0001"),
        ("transformer", "train", {"num_workers": -1}, "train: num_workers: expected 0 or more, got -1"),
        ("vq", "train", {"betas": [0.5, 1.5]}, "train: betas: expected two values in [0, 1) (Adam's), got [0.5, 1.5]"),
        ("vq", "model", {"ch_mult": []}, "model: ch_mult: expected a non-empty list of positive multipliers, got []"),
        ("vq", "model", {"ch": 10}, "model: ch: expected ch x every ch_mult to be a multiple of norm_num_groups (32), "
                                    "got ch 10 with ch_mult [1, 2, 4]"),
    ],
)  # fmt: skip
def test_a_config_that_cannot_train_is_refused_before_the_data_are_read(capsys, tmp_path, stage, section, values,
                                                                         message):  # fmt: skip
    """`values` replace the section (the legacy case keeps the default pose.dropout); the data path does not
    exist: the config is what is refused, before the data."""
    config = write_config(tmp_path, stage, {**CONFIGS[stage], section: values})
    code, err = _train(capsys, stage, config, tmp_path / "no-data", tmp_path / "run")
    assert code == 2
    assert err.strip() == f"error: {config}: {message}"
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.parametrize("stage", ["ldm", "transformer"])
def test_a_tag_vocabulary_too_small_to_learn_is_a_config_error(capsys, world, tmp_path, stage):
    """Both stages build their tag vocabulary the same way and name `text.min_count` and the cache."""
    config = write_config(tmp_path, stage, {**CONFIGS[stage], "text": {"kind": "tags", "min_count": 1000}})
    code, err = _train(capsys, stage, config, world / "cache", tmp_path / "run")
    assert code == 2
    assert err.strip() == (
        f"error: text.min_count: no tag of {world / 'cache'} is seen 1000 times "
        "(lower it, or train with text.kind: none)"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()
