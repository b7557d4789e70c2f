"""`posedraw convert vq`, `posedraw vq reconstruct` and `posedraw train vq` through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from .cli_helpers import run_cli
from .synthetic import write_shapes


def test_convert_then_reconstruct_reproduces_the_reference_latent_and_codes(capsys, fixtures, tmp_path):
    folder = fixtures / "taming_vqgan_f16_tiny"
    code, out, err = run_cli(
        capsys, "convert", "vq", folder / "model.ckpt", "--config", folder / "config.yaml", "--out", tmp_path / "vq16"
    )
    assert code == 0, err
    assert "f16, 96 codes of 8 dims" in out
    code, out, err = run_cli(
        capsys,
        "vq",
        "reconstruct",
        folder / "vq_input.png",
        "--model",
        tmp_path / "vq16",
        "--out",
        tmp_path / "rec",
        "--save-latent",
        "--save-codes",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "mean PSNR" in out
    expected = load_file(folder / "expected.safetensors")
    latent = torch.from_numpy(np.load(tmp_path / "rec" / "vq_input.latent.npy"))
    assert torch.allclose(latent, expected["vq_prequant"][0], atol=5e-6)  # measured 4e-7 (test_vq_import)
    assert np.array_equal(np.load(tmp_path / "rec" / "vq_input.codes.npy"), expected["vq_indices"][0].numpy())
    assert (tmp_path / "rec" / "vq_input.png").is_file()


def test_convert_the_first_stage_of_a_latent_diffusion_checkpoint(capsys, fixtures, tmp_path):
    folder = fixtures / "ldm_kp_f4_tiny"
    code, out, _ = run_cli(
        capsys, "convert", "vq", folder / "model.ckpt", "--config", folder / "config.yaml", "--out", tmp_path / "vq4"
    )
    assert code == 0 and "f4, 64 codes of 3 dims" in out


def test_convert_errors_are_one_line_and_leave_no_folder(capsys, fixtures, tmp_path):
    ldm = fixtures / "ldm_kp_f4_tiny"
    taming = fixtures / "taming_vqgan_f16_tiny"
    cases = [
        (["convert", "vq", tmp_path / "none.ckpt", "--config", ldm / "config.yaml"], "none.ckpt: no such checkpoint"),
        (["convert", "vq", ldm / "model.ckpt", "--config", taming / "config.yaml"], "does the config match"),
        (["convert", "vq", ldm / "model.ckpt", "--config", ldm / "expected.json"], "expected a taming-transformers"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(capsys, *argv, "--out", tmp_path / "out")
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "out").exists()


def test_reconstruct_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "vq", "reconstruct", tmp_path / "x.png", "--model", tmp_path, "--out", tmp_path)
    assert code == 2 and "expected a model folder with vq/config.json" in err


def _tiny_config(tmp_path: Path) -> Path:
    config = tmp_path / "toy.yaml"
    config.write_text(
        "model: {resolution: 32, ch: 16, ch_mult: [1, 2], num_res_blocks: 1, z_channels: 3, embed_dim: 3,"
        " n_embed: 16, norm_num_groups: 8}\n"
        "loss: {perceptual_weight: 0.0, disc_start: 2, disc_layers: 1, disc_channels: 8}\n"
        "train: {batch_size: 2, sample_every: 2, checkpoint_every: 2, num_workers: 0}\n"
    )
    return config


@pytest.mark.slow
def test_train_vq_command_trains_resumes_and_exports(capsys, tmp_path):
    write_shapes(tmp_path / "images", 8)
    config = _tiny_config(tmp_path)
    argv = [
        "train",
        "vq",
        "--config",
        config,
        "--data",
        tmp_path / "images",
        "--out",
        tmp_path / "run",
        "--device",
        "cpu",
    ]
    code, out, err = run_cli(capsys, *argv, "--max-steps", "3")
    assert code == 0, err
    assert "model saved to" in out and (tmp_path / "run" / "model" / "vq" / "config.json").is_file()
    # not on a terminal: a progress line with the total and the time left (every step here: 10 % of 3 < 1)
    assert [line.split(" (")[0] for line in err.splitlines() if line.startswith("step ")] == [
        "step 1/3", "step 2/3", "step 3/3"]  # fmt: skip
    assert all(line.endswith(" left") for line in err.splitlines() if line.startswith("step "))
    code, _, err = run_cli(capsys, *argv, "--max-steps", "5")
    assert code == 0, err
    assert f"resuming from step 3 of 5 ({tmp_path / 'run' / 'checkpoints' / 'last.ckpt'})" in err
    assert '"steps": 5' in (tmp_path / "run" / "model" / "posedraw.json").read_text()
    code, _, err = run_cli(capsys, *argv, "--max-steps", "4")  # a finished run trains nothing more, and says so
    assert code == 0, err
    assert f"{tmp_path / 'run'} is at step 5 (max steps 4): nothing to train, exporting its model" in err
    assert '"steps": 5' in (tmp_path / "run" / "model" / "posedraw.json").read_text()
    config.write_text("model: {ch: 32}\ntrain: {batchsize: 2}\n")
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "train.batchsize: unknown key" in err


@pytest.mark.slow
def test_a_decoder_only_fine_tune_keeps_the_latents_and_codes_and_changes_the_decoder(capsys, tmp_path):
    """`train.decoder_only` with `--init`: every encoder, quant_conv and codebook weight stays bit for bit
    (so a diffusion model trained on the first VQ's latents stays valid), the decoder learns; without
    --init, or from a VQ of another network, one clear line."""
    write_shapes(tmp_path / "images", 8)
    config = _tiny_config(tmp_path)
    common = ["train", "vq", "--data", tmp_path / "images", "--device", "cpu", "--max-steps", "2"]
    code, _, err = run_cli(capsys, *common, "--config", config, "--out", tmp_path / "first")
    assert code == 0, err
    first = load_file(tmp_path / "first" / "model" / "vq" / "diffusion_pytorch_model.safetensors")
    tuned_config = tmp_path / "decoder.yaml"
    tuned_config.write_text(config.read_text().replace("num_workers: 0", "num_workers: 0, decoder_only: true"))
    code, _, err = run_cli(capsys, *common, "--config", tuned_config, "--out", tmp_path / "tuned",
                           "--init", tmp_path / "first" / "model")  # fmt: skip
    assert code == 0, err
    tuned = load_file(tmp_path / "tuned" / "model" / "vq" / "diffusion_pytorch_model.safetensors")
    assert tuned.keys() == first.keys()
    frozen = [k for k in first if k.startswith(("encoder.", "quant_conv.", "quantize."))]
    assert frozen and all(torch.equal(first[k], tuned[k]) for k in frozen)
    assert any(not torch.equal(first[k], tuned[k]) for k in first if k.startswith("decoder."))
    code, _, err = run_cli(capsys, *common, "--config", tuned_config, "--out", tmp_path / "no-init")
    assert code == 2 and err.strip() == (
        f"error: {tuned_config}: train.decoder_only fine-tunes a trained VQ: give it with --init"
    )
    wider = tmp_path / "wider.yaml"
    wider.write_text(tuned_config.read_text().replace("ch: 16", "ch: 32"))
    code, _, err = run_cli(capsys, *common, "--config", wider, "--out", tmp_path / "wider",
                           "--init", tmp_path / "first" / "model")  # fmt: skip
    assert code == 2 and f"--init {tmp_path / 'first' / 'model'}: its VQ is not the config's network" in err
    assert not (tmp_path / "wider" / "model").exists()
    code, _, err = run_cli(capsys, *common, "--config", tuned_config, "--out", tmp_path / "missing",
                           "--init", tmp_path / "nowhere")  # fmt: skip
    assert code == 2 and str(tmp_path / "nowhere") in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_vq_runs_data_parallel_on_two_processes(tmp_path):
    """DDP (gloo, 2 CPU processes) through the installed console script, as a cluster job would run it."""
    write_shapes(tmp_path / "images", 8)
    script = Path(sys.executable).parent / "posedraw"
    result = subprocess.run(
        [
            str(script),
            "train",
            "vq",
            "--config",
            str(_tiny_config(tmp_path)),
            "--data",
            str(tmp_path / "images"),
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cpu",
            "--devices",
            "2",
            "--max-steps",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("model saved to") == 1  # only rank 0 exports and reports
    assert '"steps": 3' in (tmp_path / "run" / "model" / "posedraw.json").read_text()
