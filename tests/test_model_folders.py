"""Damaged model folders: a missing, truncated, empty or garbage file is one line naming it (exit 2), for
the diffusion and the transformer folders alike; weights that hold nan are one line too, never an image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file, save_file

from posedraw.config import from_dict, to_dict
from posedraw.data.toy import make_toy_sample
from posedraw.errors import CheckpointError
from posedraw.models.conditioning import PlacedPoseEncoder
from posedraw.models.transformer import TransformerConfig, build_transformer, pose_encoder_for
from posedraw.models.unet import UNetConfig, build_unet
from posedraw.models.vq import VQConfig, build_vq, load_vq
from posedraw.pipelines import CodeTransformerPipeline, KeypointLDMPipeline
from posedraw.pose import dump_pose

from .cli_helpers import run_cli
from .tiny_world import TINY_VQ

TINY_UNET = UNetConfig(sample_size=8, model_channels=8, channel_mult=(1,), attention_resolutions=(1,),
                       num_head_channels=8, context_dim=8)  # fmt: skip
TINY_CODES = TransformerConfig(num_codes=32, grid=8, pose_grid=8, layers=1, heads=1, width=8, pose_maps=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A saved tiny diffusion folder, a tiny transformer folder, the transformer in the layout of earlier
    versions, and a pose file they can draw."""
    root = tmp_path_factory.mktemp("folders")
    torch.manual_seed(0)
    vq = build_vq(from_dict(VQConfig, TINY_VQ)).eval()
    encoder = PlacedPoseEncoder(mode="tokens+maps", dim=8, latent_size=8)
    unet = build_unet(TINY_UNET, extra_in_channels=encoder.map_channels)
    KeypointLDMPipeline(unet, vq, DDIMScheduler(), encoder).save_pretrained(root / "diffusion")
    transformer = build_transformer(TINY_CODES).eval()
    CodeTransformerPipeline(transformer, vq, pose_encoder_for(TINY_CODES, null_pose=True)).save_pretrained(
        root / "transformer"
    )
    old = root / "earlier"
    vq.save_pretrained(old / "vq")
    transformer.save_pretrained(old / "transformer")
    info = {"kind": "transformer", "config": {"model": to_dict(TINY_CODES), "train": {"pose_dropout": 0.1}}}
    (old / "posedraw.json").write_text(json.dumps(info))
    (root / "pose.json").write_text(json.dumps(dump_pose(make_toy_sample(1, 64).pose)))
    return {"diffusion": root / "diffusion", "transformer": root / "transformer", "earlier": old,
            "pose": root / "pose.json"}  # fmt: skip


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 8)
    else:
        path.unlink()


def _generate(capsys, kind: str, model: Path, pose: Path, out: Path) -> tuple[int, str]:
    """`generate` with the model's default options, but 2 diffusion steps: the tests need no more."""
    steps = ["--steps", "2"] if kind == "diffusion" else []
    code, _, err = run_cli(capsys, "generate", "--model", model, "--pose", pose, *steps, "--out", out)
    return code, err


@pytest.mark.parametrize("kind", ["diffusion", "transformer", "earlier"])
def test_the_intact_tiny_folders_draw(capsys, folders, kind, tmp_path):
    code, err = _generate(capsys, kind, folders[kind], folders["pose"], tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "pose_seed0.png").is_file()


@pytest.mark.parametrize("kind", ["diffusion", "transformer", "earlier"])
def test_every_damaged_file_is_one_line_naming_it(capsys, folders, kind, tmp_path):
    source = folders[kind]
    files = sorted(p.relative_to(source) for p in source.rglob("*") if p.suffix in (".safetensors", ".json"))
    files = [f for f in files if f.name not in ("posedraw.json", "generation_config.json", "model_index.json")]
    assert sum(f.suffix == ".safetensors" for f in files) >= 2  # every component's weights
    for relative in files:
        damages = (
            ("truncated", "empty", "garbage", "deleted")
            if relative.suffix == ".safetensors"
            else ("garbage", "deleted")
        )
        for how in damages:
            folder = tmp_path / f"{relative.parent.name}-{relative.name}-{how}"
            shutil.copytree(source, folder)
            _damage(folder / relative, how)
            code, err = _generate(capsys, kind, folder, folders["pose"], tmp_path / "out")
            named = folder / relative if how != "deleted" else folder / relative.parent
            assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (relative, how, err)
            assert str(named) in err, (relative, how, err)
            assert not (tmp_path / "out").exists()
            shutil.rmtree(folder)


def test_a_damaged_vq_is_one_error_naming_its_weights(folders, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(folders["diffusion"], folder)
    weights = folder / "vq" / "diffusion_pytorch_model.safetensors"
    _damage(weights, "truncated")
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as info:
        load_vq(folder)
    assert str(weights) in str(info.value) and "\n" not in str(info.value)


def _poison(folder: Path, component: str) -> None:
    """Every weight of one component nan: a file that reads fine and draws nothing."""
    path = next((folder / component).glob("*.safetensors"))
    save_file({k: torch.full_like(v, float("nan")) for k, v in load_file(str(path)).items()}, str(path))


@pytest.mark.parametrize(
    ("kind", "component", "message"),
    [("diffusion", "unet", "step 1 of 2: the model produced non-finite values"),
     ("transformer", "transformer", "code 1 of 64: the model produced non-finite values"),
     ("diffusion", "vq", "decoding: the VQ decoder produced non-finite values")],
)  # fmt: skip
def test_weights_that_make_nan_are_one_line_and_no_image(capsys, folders, tmp_path, kind, component, message):
    folder = tmp_path / "m"
    shutil.copytree(folders[kind], folder)
    _poison(folder, component)
    code, err = _generate(capsys, kind, folder, folders["pose"], tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not list((tmp_path / "out").glob("*.png"))
