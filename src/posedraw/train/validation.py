"""Validation during training: draw held-out poses every N steps and score them, so a run shows when its
model stops improving (and overfits) while it trains, not after.

Both generative stages (`train ldm`, `train transformer`) use it the same way: a `validation:` config
section names the held-out poses (the last `poses` samples of the cache, which are then left out of
training, or a folder of pose files), how often to draw them, the detector that reads the poses back and
the feature extractor of the image distances. Every score is `posedraw.eval`'s (PCK@0.1, OKS, left/right
swaps, COCO OKS AP/AR by pycocotools, person count error, Fréchet/kernel distances): nothing is measured a
second way here. The scores go to Lightning's loggers (`val/...`), and with `keep_best` the best
checkpoint is kept beside `last.ckpt`.

Several processes: each rank draws every world_size-th pose (seeded per pose, so the drawings do not
depend on the number of ranks), the detections and features are gathered, and every rank computes the same
scores (so all take the same keep-best decision); rank 0 alone logs and writes the checkpoint file.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from posedraw.errors import ConfigError, PosedrawError
from posedraw.pose import Pose

#: metrics `keep_best` may name, and whether larger ("max") or smaller ("min") is better. `fd` / `kd` are
#: the Fréchet / kernel distances of the configured extractor (called FID / KID only for Inception)
METRICS = {"pck": "max", "oks": "max", "ap": "max", "ar": "max", "person_count_error": "min",
           "swap_rate": "min", "fd": "min", "kd": "min"}  # fmt: skip
FEATURES = ("none", "toy-detector", "inception")
#: the checkpoint of the best validation, beside last.ckpt
BEST = "best.ckpt"


@dataclass(frozen=True)
class ValidationConfig:
    """The `validation:` section of the `ldm` and `transformer` configs; off unless poses are given."""

    poses: int = 0  # held-out samples: the last `poses` of the cache, left out of training
    pose_dir: str | None = None  # or: every *.json pose file of this folder (nothing is left out)
    every: int = 500  # steps between validations
    steps: int = 8  # sampler steps of the diffusion model's drawings (fast settings)
    detector: str = "toy"  # toy | mediapipe | a toy pose detector's weights file
    features: str = "none"  # image distances: none | toy-detector | inception (only this one is FID/KID)
    reference: str | None = None  # real images for the distances; default: the held-out samples, decoded
    keep_best: str | None = None  # one of METRICS: keep checkpoints/best.ckpt by it
    seed: int = 0  # pose i is drawn with seed + i

    def __post_init__(self) -> None:
        for name in ("every", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected at least 1, got {getattr(self, name)}")
        if self.poses < 0:
            raise ValueError(f"poses: expected 0 or more, got {self.poses}")
        if self.poses and self.pose_dir is not None:
            raise ValueError("pose_dir: give held-out poses of the cache (poses) or a folder (pose_dir), not both")
        if self.detector not in ("toy", "mediapipe") and not Path(self.detector).is_file():
            raise ValueError(f"detector: expected toy, mediapipe or a toy pose detector's weights file, "
                             f"got {self.detector!r}")  # fmt: skip
        if self.features not in FEATURES:
            raise ValueError(f"features: expected one of {', '.join(FEATURES)}, got {self.features!r}")
        if self.keep_best is not None:
            check_keep_best(self)

    @property
    def enabled(self) -> bool:
        return self.poses > 0 or self.pose_dir is not None


def check_keep_best(config: ValidationConfig) -> None:
    """A keep-best metric must be one of METRICS, measured by this config."""
    if config.keep_best not in METRICS:
        raise ValueError(f"keep_best: expected one of {', '.join(METRICS)}, got {config.keep_best!r}")
    if not config.enabled:
        raise ValueError(f"keep_best: {config.keep_best} needs validation poses (validation.poses or pose_dir)")
    if config.keep_best in ("fd", "kd") and config.features == "none":
        raise ValueError(f"keep_best: {config.keep_best} needs an extractor (validation.features)")


def with_keep_best(config: Any, metric: str | None) -> Any:
    """`config` (a run config with a `validation` section) keeping the best checkpoint by `metric`
    (`--keep-best`); None leaves the config's choice."""
    if metric is None:
        return config
    try:
        return replace(config, validation=replace(config.validation, keep_best=metric))
    except ValueError as exc:
        raise ConfigError(f"--keep-best: {str(exc).removeprefix('keep_best: ')}") from None


# --- the held-out set -----------------------------------------------------------------------------------


@dataclass
class WithoutHeldOut:
    """A sample source (posedraw.data.stream.Source) less its last `held` samples in stored order: the
    training stream never reads the samples validation draws."""

    source: Any
    held: int
    counts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        left, self.counts = self.held, []
        for count in reversed(self.source.counts):
            taken = min(count, left)
            left -= taken
            self.counts.insert(0, count - taken)

    def read(self, shard: int) -> Sequence[Any]:
        return self.source.read(shard)[: self.counts[shard]]

    def name(self, shard: int) -> str:
        return self.source.name(shard)


def hold_out(stream: Any, held: int, cache: Path) -> list[dict[str, Any]]:
    """Take the last `held` samples of `stream`'s cache out of its training samples; returns them decoded
    (unflipped, stored order)."""
    import random

    from posedraw.data.latents import CachedSample

    total = sum(stream.source.counts)
    if held >= total:
        raise ConfigError(f"validation.poses: {held} held-out samples leave none of {cache}'s {total} to train on")
    plain = CachedSample(stream.decode.kind, flip=0.0)
    raws: list[Any] = []
    for shard in reversed(range(len(stream.source.counts))):
        if len(raws) >= held:
            break
        raws = list(stream.source.read(shard)) + raws
    stream.source = WithoutHeldOut(stream.source, held)
    return [plain(raw, random.Random(0)) for raw in raws[len(raws) - held :]]


def pose_folder(folder: Path) -> list[Pose]:
    """Every *.json pose file of `folder`, in name order."""
    from posedraw.pose import read_pose

    if not folder.is_dir():
        raise ConfigError(f"validation.pose_dir: {folder}: no such folder of pose files")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ConfigError(f"validation.pose_dir: {folder}: no *.json pose files")
    return [read_pose(path) for path in files]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255], what the feature extractors take."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


@dataclass
class HeldOutSet:
    """What validation draws and compares with: the poses, and the real images' features (or None)."""

    poses: list[Pose]
    real_features: torch.Tensor | None = None


def held_out_set(
    config: ValidationConfig, stream: Any, cache: Path, decode: Callable[[torch.Tensor], torch.Tensor], extractor: Any
) -> HeldOutSet:
    """The held-out poses (removed from `stream` when they come from the cache) and, with an extractor, the
    features of the real images: `reference`'s, else the held-out samples decoded by `decode` (the VQ, so
    the distance says how far the drawings are from what the first stage can reproduce)."""
    samples = hold_out(stream, config.poses, cache) if config.poses else []
    poses = [s["pose"] for s in samples] if samples else pose_folder(Path(config.pose_dir or ""))
    if extractor is None:
        return HeldOutSet(poses)
    if config.reference is not None:
        from posedraw.eval.report import read_reference

        reals = read_reference(Path(config.reference))
    elif samples:
        key = "latent" if "latent" in samples[0] else "codes"
        with torch.no_grad():
            reals = list(to_uint8(decode(torch.stack([s[key] for s in samples]))))
    else:
        raise ConfigError("validation.features: needs real images: validation.reference, or held-out poses")
    from posedraw.eval.image_quality import image_features

    return HeldOutSet(poses, image_features(extractor, reals))


def stage_validation(
    config: ValidationConfig,
    stream: Any,
    cache: Path,
    decode: Callable[[torch.Tensor], torch.Tensor],
    build_pipeline: Callable[[L.LightningModule], Any],
    out: Path,
    **sampling: Any,
) -> Validation | None:
    """A stage's validation when its config asks for it (None otherwise): the held-out set (taken out of
    `stream`), drawn by the pipeline `build_pipeline` makes of the module being trained, with `sampling`
    options. Both generative stages go through here; they differ only in `decode`, the pipeline and its
    sampling options."""
    if not config.enabled:
        return None
    extractor = feature_extractor(config)
    held = held_out_set(config, stream, cache, decode, extractor)

    def draw(module: L.LightningModule, poses: list[Pose], seeds: list[int]) -> torch.Tensor:
        pipeline = build_pipeline(module).to(module.device)
        return pipeline(pipeline.drawable(poses), seeds=seeds, **sampling).images

    return Validation(config, held, draw, out, extractor, say=announce)


def feature_extractor(config: ValidationConfig) -> Any:
    """The configured extractor (None for `features: none`), loaded before training starts."""
    if config.features == "none":
        return None
    from posedraw.eval.image_quality import load_extractor

    return load_extractor(config.features)


# --- scoring --------------------------------------------------------------------------------------------


def validation_scores(
    detected: Sequence[Pose], targets: Sequence[Pose], fakes: torch.Tensor | None, held: HeldOutSet, label: str
) -> dict[str, float]:
    """The scores of one validation: `posedraw.eval`'s measures of the detections against their targets
    (in the images' frame) and, with features, the distances to the real images."""
    import numpy as np

    from posedraw.eval.coco_ap import coco_detections, coco_ground_truth, keypoint_ap
    from posedraw.eval.fidelity import fidelity
    from posedraw.eval.person_count import MIN_JOINTS, person_count_errors

    pose = fidelity(detected, targets)
    scores = {"pck": pose.pck, "oks": pose.oks, "swap_rate": pose.swap_rate,
              "person_count_error": float(np.mean(person_count_errors(detected, targets)))}  # fmt: skip
    try:
        ap = keypoint_ap(coco_ground_truth(targets), coco_detections(detected, MIN_JOINTS))
        scores.update({name: ap[name] for name in ("ap", "ar") if ap[name] is not None})
    except PosedrawError:  # pycocotools missing: AP is skipped, the other scores stand
        pass
    if fakes is not None and held.real_features is not None:
        from posedraw.eval.image_quality import distance_names, distances

        found = distances(held.real_features, fakes, label)
        fd, kd = distance_names(label)
        scores.update({"fd": float(found[fd]), "kd": float(found[kd])})
    return scores


def logged_name(metric: str, label: str | None) -> str:
    """The name a score is logged under: `val/<metric>`; the distances by their extractor's names
    (`val/fid` only for Inception, else `val/FD_toy-detector`)."""
    if metric in ("fd", "kd") and label is not None:
        from posedraw.eval.image_quality import distance_names

        return "val/" + distance_names(label)[metric == "kd"]
    return f"val/{metric}"


def direction(logged: str) -> str | None:
    """ "higher" or "lower" (is better) for a logged name (`loss`, `val/pck`, `val/FD_toy-detector`), None
    for a count or an unknown name."""
    name = logged.removeprefix("val/")
    if name == "loss" or name in ("fid", "kid") or name.startswith(("FD_", "KD_")):
        return "lower"
    if name not in METRICS:
        return None
    return "higher" if METRICS[name] == "max" else "lower"


def improved(metric: str, value: float, best: float | None) -> bool:
    """Whether `value` of `metric` beats `best` (None: nothing yet; NaN never wins)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if METRICS[metric] == "max" else value < best


def announce(message: str) -> None:
    """Validation's lines go where the driver's progress lines go (stderr; Validation speaks on rank 0)."""
    print(message, file=sys.stderr, flush=True)


# --- the callback ---------------------------------------------------------------------------------------

#: draws one image per pose with the module's weights (EMA where the stage keeps them): (module, poses,
#: seeds) -> images (B, 3, H, W) in [-1, 1]
Draw = Callable[[L.LightningModule, list[Pose], list[int]], torch.Tensor]


class Validation(Callback):
    """Every `config.every` steps: draw the held-out poses, score them, log the scores, keep the best."""

    def __init__(self, config: ValidationConfig, held: HeldOutSet, draw: Draw, out: Path, extractor: Any = None,
                 say: Callable[[str], None] = lambda message: None) -> None:  # fmt: skip
        from posedraw.eval.fidelity import load_detector

        self.config, self.held, self.draw, self.out, self.extractor, self.say = config, held, draw, out, extractor, say
        self.detector = load_detector(config.detector)
        self.label = None if extractor is None else extractor.label
        self.history: list[dict[str, float]] = []  # {"step": s, metric: value, ...} per validation
        self.best: dict[str, float] | None = None  # the entry of history kept as best.ckpt

    @property
    def best_path(self) -> Path:
        return self.out / "checkpoints" / BEST

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        from posedraw.train.driver import training_step_of

        step = training_step_of(trainer, module)
        if step % self.config.every == 0 and not any(entry["step"] == step for entry in self.history):
            self.validate(trainer, module, step)

    def validate(self, trainer: L.Trainer, module: L.LightningModule, step: int) -> dict[str, float]:
        """Draw this rank's share of the poses, gather every rank's, score, log and keep the best."""
        rank, ranks = trainer.global_rank, trainer.world_size
        mine = list(range(rank, len(self.held.poses), ranks))
        parts = self._draw_and_detect(module, mine)
        if ranks > 1:
            gathered: list[Any] = [None] * ranks
            torch.distributed.all_gather_object(gathered, parts)
            parts = [part for rank_parts in gathered for part in rank_parts]
        parts.sort(key=lambda part: part[0])
        detected, targets = [p[1] for p in parts], [p[2] for p in parts]
        fakes = torch.stack([p[3] for p in parts]) if self.extractor is not None else None
        scores = {**validation_scores(detected, targets, fakes, self.held, self.label or ""), "images": len(parts)}
        entry = {"step": step, **scores}
        self.history.append(entry)
        self._log(trainer, scores, step)
        metric = self.config.keep_best
        best = None if self.best is None or metric is None else self.best.get(metric)
        if metric is not None and metric in scores and improved(metric, scores[metric], best):
            self.best = entry
            trainer.save_checkpoint(self.best_path)  # every rank takes part; rank 0 writes (atomically)
        return scores

    @torch.no_grad()
    def _draw_and_detect(self, module: L.LightningModule, indices: list[int]) -> list[tuple]:
        """(index, detected pose, target in the image's frame, features or None) for each pose of `indices`."""
        from posedraw.eval.fidelity import in_image_frame

        if not indices:
            return []
        poses = [self.held.poses[i] for i in indices]
        images = self.draw(module, poses, [self.config.seed + i for i in indices]).float().cpu()
        targets = [in_image_frame(p, images.shape[-1], images.shape[-2]) for p in poses]
        detected = self.detector(images, targets)
        features = [None] * len(indices)
        if self.extractor is not None:
            from posedraw.eval.image_quality import image_features

            features = list(image_features(self.extractor, list(to_uint8(images))))
        return list(zip(indices, detected, targets, features))

    def _log(self, trainer: L.Trainer, scores: dict[str, float], step: int) -> None:
        """To every logger of the run (Lightning's loggers write on rank 0 only), and one line on rank 0."""
        logged = {logged_name(k, self.label): float(v) for k, v in scores.items()}
        for logger in trainer.loggers:
            logger.log_metrics(logged, step)
            logger.save()
        if trainer.is_global_zero:
            shown = ", ".join(f"{k.removeprefix('val/')} {v:.4g}" for k, v in logged.items())
            self.say(f"validation at step {step} ({len(self.held.poses)} poses): {shown}")

    def state_dict(self) -> dict[str, Any]:
        """The scores so far travel in the checkpoint: a resumed run keeps its best and its history."""
        return {"history": self.history, "best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.best = state_dict.get("best")

    def summary(self) -> tuple[str, dict[str, Any]] | None:
        """(a line for the user, the run record's `validation` entry): which step was best by the keep-best
        metric and how far the last validation fell off it (in the metric's units, positive = worse)."""
        if not self.history:
            return None
        record: dict[str, Any] = {"history": self.history}
        metric, best = self.config.keep_best, self.best
        if metric is None or best is None:
            return f"validated {len(self.history)} times (last at step {self.history[-1]['step']})", record
        last = self.history[-1]
        fell = (best[metric] - last[metric]) * (1 if METRICS[metric] == "max" else -1)
        record.update({"metric": metric, "best_step": int(best["step"]), "best": best[metric],
                       "last_step": int(last["step"]), "last": last[metric], "fell_off": fell,
                       "checkpoint": str(self.best_path)})  # fmt: skip
        name = logged_name(metric, self.label).removeprefix("val/")
        after = "is the best" if last["step"] == best["step"] else f"fell off by {fell:.4g}"
        line = (f"best {name} {best[metric]:.4g} at step {int(best['step'])} ({self.best_path}); the last "
                f"validation (step {int(last['step'])}) {after}")  # fmt: skip
        return line, record
