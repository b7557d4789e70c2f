"""A model folder whose config.json holds a value no network is built from (a hand-edited or damaged folder)
is one line naming the folder and the field, from `generate` and from `studio` alike, before any drawing;
so is an original VQ config that `convert vq` cannot build."""

from __future__ import annotations

import json
import shutil

import pytest

from posedraw.builtin import builtin_model
from tests.cli_helpers import run_cli
from tests.conftest import REPO

STANDING = REPO / "examples" / "poses" / "standing.json"


def _edited_builtin(tmp_path, component: str, changes: dict):
    folder = tmp_path / "model"
    shutil.copytree(builtin_model("diffusion"), folder)
    config = folder / component / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **changes}))
    return folder


BAD_VALUES = [
    ("pose_encoder", {"mode": "bogus"}, "mode: expected tokens, maps or tokens+maps, got 'bogus'"),
    ("pose_encoder", {"map_kind": "dots"}, "map_kind: expected heatmaps or skeleton, got 'dots'"),
    ("pose_encoder", {"max_people": 0}, "max_people: expected at least 1, got 0"),
    ("text_encoder", {"max_tags": 0}, "max_tags: expected at least 1, got 0"),
]


@pytest.mark.parametrize(("component", "changes", "message"), BAD_VALUES)
def test_generate_names_the_folder_and_the_field(capsys, tmp_path, component, changes, message):
    folder = _edited_builtin(tmp_path, component, changes)
    code, _, err = run_cli(capsys, "generate", "--model", folder, "--pose", STANDING, "--out", tmp_path / "out")
    assert code == 2 and err == f"error: {folder}: not a loadable KeypointLDMPipeline (ValueError: {message})\n"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_studio_refuses_the_folder_before_serving(capsys, tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    from posedraw.studio import server

    monkeypatch.setattr(server, "serve", lambda *args, **kwargs: pytest.fail("served a model it cannot load"))
    folder = _edited_builtin(tmp_path, "pose_encoder", {"mode": "bogus"})
    code, _, err = run_cli(capsys, "studio", "--model", folder, "--out", tmp_path / "gallery")
    assert code == 2 and err.endswith(f"error: {folder}: not a loadable KeypointLDMPipeline (ValueError: "
                                      "mode: expected tokens, maps or tokens+maps, got 'bogus')\n")  # fmt: skip


def test_convert_vq_names_the_config_and_the_field(capsys, tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text("model:\n  params:\n    embed_dim: 3\n    n_embed: 16\n    ddconfig: {double_z: false, "
                      "resolution: 32, in_channels: 3, out_ch: 3, ch: 16, ch_mult: [], num_res_blocks: 1, "
                      "z_channels: 3}\n")  # fmt: skip
    checkpoint = tmp_path / "last.ckpt"
    checkpoint.write_bytes(b"not read: the config is refused first")
    code, _, err = run_cli(capsys, "convert", "vq", checkpoint, "--config", config, "--out", tmp_path / "vq")
    assert code == 2 and err.startswith(f"error: {config}: expected a taming-transformers or latent-diffusion VQ")
    assert "ValueError: ch_mult: expected a non-empty list of positive multipliers, got []" in err
    assert err.count("\n") == 1 and not (tmp_path / "vq").exists()
