"""The stage driver, for every stage: resuming equals never stopping, signals save, EMA follows the module,
every parameter trains (DDP's rule), bad run folders are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from posedraw.config import from_dict
from posedraw.data.latents import read_cache
from posedraw.data.shards import read_raw_samples, shard_urls
from posedraw.errors import CheckpointError, ConfigError, TrainingInterrupted
from posedraw.train.driver import RunOptions, run_stage, training_step_of
from posedraw.train.ldm import LatentDiffusionModule, LDMRunConfig, ldm_stage
from posedraw.train.transformer import CodeTransformerModule, TransformerRunConfig, fit_to_cache, transformer_stage
from posedraw.train.vq import vq_stage

from .tiny_world import TINY_LDM, TINY_TRANSFORMER, TINY_VQ_RUN, write_config


def _stage(name: str, world: Path, tmp_path: Path, out: Path):
    if name == "vq":
        return vq_stage(write_config(tmp_path, name, TINY_VQ_RUN), world / "toy", out)
    if name == "vq-image-folder":
        return vq_stage(write_config(tmp_path, name, TINY_VQ_RUN), _image_folder(world), out)
    if name == "ldm":
        return ldm_stage(write_config(tmp_path, name, TINY_LDM), world / "cache", world / "vq", out)
    config = TINY_TRANSFORMER
    if name == "transformer-2-workers":
        config = {**config, "train": {**config["train"], "num_workers": 2}}
    return transformer_stage(write_config(tmp_path, name, config), world / "cache", world / "vq", out)


def _image_folder(world: Path) -> Path:
    """The toy figures as a plain folder of PNGs."""
    folder = world / "images"
    if not folder.is_dir():
        folder.mkdir()
        for i, raw in enumerate(raw for url in shard_urls(world / "toy") for raw in read_raw_samples(url)):
            (folder / f"{i:03d}.png").write_bytes(raw["png"])
    return folder


class SignalAt(Callback):
    """Sends `signum` to this process at the start of training step `step` (as Ctrl-C or a scheduler would)."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step

    def on_train_batch_start(self, trainer, module, *args) -> None:
        if training_step_of(trainer, module) == self.step:
            os.kill(os.getpid(), self.signum)


def _checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def _assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["vq", "vq-image-folder", "ldm", "transformer", "transformer-2-workers"])
def test_interrupted_and_resumed_training_equals_an_uninterrupted_run(stage, world, tmp_path):
    steps = 6
    straight = tmp_path / "straight"
    run_stage(_stage(stage, world, tmp_path, straight), RunOptions(straight, device="cpu", max_steps=steps,
                                                                   progress=False))  # fmt: skip
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest itself was started in the background
    for signum, at in ((signal.SIGINT, 2), (signal.SIGTERM, 3)):
        out = tmp_path / signal.Signals(signum).name
        interrupted = _stage(stage, world, tmp_path, out)
        interrupted.callbacks.append(SignalAt(signum, at))
        options = RunOptions(out, device="cpu", max_steps=steps, progress=False)
        with pytest.raises(TrainingInterrupted) as stopped:
            run_stage(interrupted, options)
        assert stopped.value.step == at + 1 and stopped.value.exit_code == 128 + signum  # the current step finished
        assert _checkpoint(out)["posedraw"]["step"] == at + 1
        assert signal.getsignal(signal.SIGINT) is before  # handlers restored
        run_stage(_stage(stage, world, tmp_path, out), options)
        expected, resumed = _checkpoint(straight), _checkpoint(out)
        assert resumed["posedraw"]["step"] == steps
        _assert_same(expected["state_dict"], resumed["state_dict"], "weights")  # EMA included (ldm)
        _assert_same(expected["optimizer_states"], resumed["optimizer_states"], "optimizer")
        _assert_same(expected["lr_schedulers"], resumed["lr_schedulers"], "schedule")
    if stage == "ldm":
        assert any(k.startswith("ema.module.unet.") for k in expected["state_dict"])


@pytest.mark.slow
def test_a_run_folder_of_another_stage_or_config_is_refused_before_training(world, tmp_path):
    out = tmp_path / "run"
    options = RunOptions(out, device="cpu", max_steps=1, progress=False)
    run_stage(_stage("ldm", world, tmp_path, out), options)
    with pytest.raises(ConfigError, match=r"holds a ldm training run; train transformer needs another --out"):
        run_stage(_stage("transformer", world, tmp_path, out), options)
    changed = {**TINY_LDM, "train": {**TINY_LDM["train"], "learning_rate": 0.5}}
    stage = ldm_stage(write_config(tmp_path, "changed", changed), world / "cache", world / "vq", out)
    with pytest.raises(ConfigError, match=r"train\.learning_rate: 0\.001, now 0\.5"):
        run_stage(stage, options)
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated (a copy cut short)
    with pytest.raises(CheckpointError) as unreadable:
        run_stage(_stage("ldm", world, tmp_path, out), options)
    assert str(unreadable.value).startswith(f"{last}: not a readable training checkpoint")
    assert "pass --restart to start the run over" in str(unreadable.value)


def test_ema_tensors_follow_the_module_to_another_device():
    module = LatentDiffusionModule(from_dict(LDMRunConfig, TINY_LDM))
    ema = dict(module.ema.named_parameters()) | dict(module.ema.named_buffers())
    assert ema and all(t.device.type == "cpu" for t in ema.values())
    module.to("meta")
    assert all(t.device.type == "meta" for t in module.ema.parameters())
    assert all(t.device.type == "meta" for t in module.ema.buffers())
    assert not any(p.requires_grad for p in module.ema.parameters())  # DDP neither reduces nor waits for them


def test_ema_follows_the_weights_with_a_warming_up_decay():
    module = LatentDiffusionModule(from_dict(LDMRunConfig, TINY_LDM))
    live = next(module.unet.parameters())
    expected = live.detach().clone()
    for n in range(4):
        with torch.no_grad():
            live.add_(1.0)
        module.optimizer_step(0, 0, torch.optim.SGD([torch.zeros(1, requires_grad=True)]))
        if n == 0:
            expected = live.detach().clone()  # the first update copies the weights
        else:
            decay = min(0.9, (1 + n) / (10 + n))
            expected = decay * expected + (1 - decay) * live.detach()
    averaged = next(module.ema.module["unet"].parameters())
    assert torch.allclose(averaged, expected, atol=1e-6)
    assert (live - averaged).abs().min() > 0.3  # the average lags behind every weight


@pytest.mark.parametrize("mode", ["tokens+maps", "tokens", "maps"])
def test_every_parameter_of_the_diffusion_module_gets_a_gradient(mode, world):
    """DDP fails at the next step when a parameter got no gradient: here no sample drops its pose, so the
    null pose must take part deliberately."""
    config = from_dict(LDMRunConfig, {**TINY_LDM, "pose": {"mode": mode, "dropout": 1e-9}})
    module = LatentDiffusionModule(config)
    samples = read_cache(world / "cache", limit=4)
    module.loss(torch.stack([s["latent"] for s in samples]), [s["pose"] for s in samples]).backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_every_parameter_of_the_transformer_module_gets_a_gradient(world):
    config = fit_to_cache(from_dict(TransformerRunConfig, TINY_TRANSFORMER), world / "cache")
    module = CodeTransformerModule(config)
    module.log = lambda *args, **kwargs: None  # outside a Trainer
    samples = read_cache(world / "cache", "codes", limit=4)
    batch = {"codes": torch.stack([s["codes"] for s in samples]), "pose": [s["pose"] for s in samples]}
    module.training_step(batch, 0).backward()
    assert not [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.slow
def test_a_rank_started_by_another_process_dies_with_it():
    """A rank that outlives rank 0 waits for it in the next collective forever (seen: 14 minutes at one
    core): ranks started by rank 0 ask the kernel to kill them when their parent dies."""
    rank = ("from posedraw.train.ranks import die_with_parent; die_with_parent(); "
            "print('ready', flush=True); import time; time.sleep(120)")  # fmt: skip
    parent_code = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {rank!r}], env={{**os.environ, 'LOCAL_RANK': '1'}},"
        " stdout=subprocess.PIPE, text=True)\n"
        "child.stdout.readline()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's bookkeeping is left


def test_optimizers_follow_the_device_of_the_run_not_the_machine(world, tmp_path, monkeypatch):
    """Fused Adam/AdamW only for a module on a GPU: a CPU run on a machine with a GPU gets the plain kernel."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in ("vq", "ldm", "transformer"):
        module = _stage(name, world, tmp_path, tmp_path / name).module
        optimizers = module.configure_optimizers()
        if isinstance(optimizers, dict):
            optimizers = [optimizers["optimizer"]]
        elif not isinstance(optimizers, list):
            optimizers = [optimizers]
        assert all(not opt.defaults.get("fused") for opt in optimizers), name
