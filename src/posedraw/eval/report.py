"""`posedraw eval report`: the field's evaluation protocol on folders of drawings.

HumanSD's protocol judges a pose-conditioned generator by the people re-detected on its drawings (COCO OKS
AP and AR, `posedraw.eval.coco_ap`), the person count error (`posedraw.eval.person_count`), image quality
against real images (FID and KID, `posedraw.eval.image_quality`) and text agreement (CLIP score); posedraw
adds its own per-image measures (PCK@0.1, OKS, left/right swaps: `posedraw.eval.fidelity`) and, for toy
models, the toy attribute judge (`posedraw.eval.attributes`).

Drawings are the PNGs `posedraw generate` and the studio write: each carries its recipe (pose, prompt,
model, options). They are grouped into runs: with `compare`, one run per folder; otherwise by the recipe
settings that differ between drawings (pose guidance, model or checkpoint, ...), so folders drawn at
several settings give one run per setting. Every run is broken down per pose kind (from the pose's name)
and per number of people asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posedraw.errors import DataError, PosedrawError
from posedraw.eval.coco_ap import STATS, coco_detections, coco_ground_truth, keypoint_ap
from posedraw.eval.fidelity import Detector, fidelity, in_image_frame, load_detector, with_people
from posedraw.eval.image_quality import NamedClip, distances, image_features
from posedraw.eval.person_count import MIN_JOINTS, people_asked, people_found, person_count_errors
from posedraw.pose import Pose, oks, pck

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: recipe options that are not settings of a run (they vary per drawing)
PER_DRAWING = ("prompt", "negative_prompt")
#: what each detector can count (see posedraw.eval.person_count)
COUNTS = {
    "toy": "missing people only: each asked-for person is looked for where it should be, extra ones are not seen",
    "mediapipe": "at most one person per image: scenes of several people count short by construction",
}


@dataclass(frozen=True)
class Drawing:
    """One drawing and its recipe; `pose` is the conditioning pose in the image's frame."""

    path: Path
    pixels: torch.Tensor  # uint8 (3, H, W)
    pose: Pose
    prompt: str
    model: str
    options: dict[str, Any]
    kind: str
    folder: Path

    @property
    def image(self) -> torch.Tensor:
        """float (3, H, W) in [-1, 1]."""
        return self.pixels.float() / 127.5 - 1.0

    @property
    def settings(self) -> dict[str, Any]:
        """What the drawing's run is made with: the model and every scalar option but the prompts."""
        scalars = {k: v for k, v in self.options.items()
                   if k not in PER_DRAWING and (v is None or isinstance(v, (str, int, float, bool)))}  # fmt: skip
        return {"model": self.model, **scalars}


def pose_kind(name: str) -> str:
    """A pose's kind from its name: the pose sampler's kind it starts with (`walking_007` -> walking), else
    the name less trailing numbers or ids (`two_figures` stays, `studio-3fa9c0d2e1b4` -> studio)."""
    from posedraw.data.poses import KINDS

    for kind in sorted(KINDS, key=len, reverse=True):
        if re.fullmatch(rf"{kind}([-_].*)?", name):
            return kind
    return re.sub(r"([-_](\d+|[0-9a-f]{8,}))+$", "", name) or name


def drawing_files(folder: Path) -> list[Path]:
    """The drawings of a folder: its PNGs, less hidden files (unfinished writes) and the side-by-side
    `_grid` / `_progress` images generate writes next to a drawing."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of drawings")
    pngs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    names = {p.name for p in pngs}
    files = [p for p in pngs if not any(p.stem.endswith(s) and p.name.replace(s, "") in names
                                        for s in ("_grid", "_progress"))]  # fmt: skip
    if not files:
        raise DataError(f"{folder}: no PNG drawings (expected images written by posedraw generate or the studio)")
    return files


def read_drawing(path: Path, folder: Path) -> Drawing:
    from PIL import Image

    from posedraw.pipelines.outputs import read_png_metadata

    job, options, model = read_png_metadata(path)
    with Image.open(path) as image:
        pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()
    pose = in_image_frame(job.pose, pixels.shape[-1], pixels.shape[-2])
    prompt = options.get("prompt") or ""
    return Drawing(path, pixels, pose, str(prompt), model, dict(options), pose_kind(job.name), folder)


def read_drawings(folders: Sequence[Path]) -> list[Drawing]:
    """Every drawing of every folder (each read before anything is measured: a bad file stops it all)."""
    if not folders:
        raise PosedrawError("no folders of drawings given")
    return [read_drawing(path, folder) for folder in folders for path in drawing_files(folder)]


def read_reference(folder: Path) -> list[torch.Tensor]:
    """The real images of a folder (any of IMAGE_SUFFIXES), as uint8 (3, H, W)."""
    from posedraw.io import load_rgb

    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of reference images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no reference images (expected {', '.join(IMAGE_SUFFIXES)} files)")
    return [torch.tensor(load_rgb(path)).permute(2, 0, 1).contiguous() for path in files]


# --- runs ---------------------------------------------------------------------------------------------
def varying_settings(drawings: Sequence[Drawing]) -> list[str]:
    """The settings whose value differs between drawings that have them (the model always counts)."""
    seen: dict[str, set] = {}
    for drawing in drawings:
        for key, value in drawing.settings.items():
            seen.setdefault(key, set()).add(repr(value))
    return [key for key, values in seen.items() if len(values) > 1]


def _order(value: Any) -> tuple:
    return (
        (0, float(value), "")
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else (1, 0.0, str(value))
    )


def group_runs(drawings: Sequence[Drawing], by_folder: bool) -> dict[str, list[int]]:
    """Run label -> indices of its drawings: one run per folder (in the order given), or per combination of
    the varying settings (`guidance 2`, `builtin:transformer, guidance 1`), sorted by their values."""
    runs: dict[Any, list[int]] = {}
    if by_folder:
        folders = list(dict.fromkeys(d.folder for d in drawings))
        names = [f.name for f in folders]
        label = {f: (f.name if names.count(f.name) == 1 else str(f)) for f in folders}
        for index, drawing in enumerate(drawings):
            runs.setdefault(label[drawing.folder], []).append(index)
        return runs
    keys = varying_settings(drawings)
    for index, drawing in enumerate(drawings):
        settings = drawing.settings
        runs.setdefault(tuple((k, settings[k]) for k in keys if k in settings), []).append(index)
    ordered = sorted(runs, key=lambda combo: [_order(value) for _, value in combo])
    return {run_label(combo, drawings[runs[combo][0]].model): runs[combo] for combo in ordered}


def run_label(combo: tuple, model: str) -> str:
    if not combo:
        return model
    return ", ".join(shown(value) if key == "model" else f"{key} {shown(value)}" for key, value in combo)


def shown(value: Any) -> str:
    """A setting as a label shows it: numbers short (2.0 -> 2)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- detection ----------------------------------------------------------------------------------------
# `load_detector` (posedraw.eval.fidelity) checks a detector before any drawing is read


def detect_drawings(drawings: Sequence[Drawing], detector: Detector, batch: int = 128) -> list[Pose]:
    """The people the detector finds on each drawing (drawings of one size go through together)."""
    found: list[Pose | None] = [None] * len(drawings)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, drawing in enumerate(drawings):
        by_size.setdefault(tuple(drawing.pixels.shape), []).append(index)
    for rows in by_size.values():
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            images = torch.stack([drawings[i].image for i in chunk])
            for i, pose in zip(chunk, detector(images, [drawings[i].pose for i in chunk])):
                found[i] = pose
    return found  # type: ignore[return-value]


# --- measuring ----------------------------------------------------------------------------------------
@dataclass
class Scores:
    """What was measured on every drawing; groups of drawings are summarized from it."""

    drawings: list[Drawing]
    detected: list[Pose]
    oks: np.ndarray  # per drawing, over its asked-for people
    pck: np.ndarray
    found: np.ndarray  # people found per drawing
    count_error: np.ndarray
    clip: np.ndarray  # per drawing; NaN where not scored
    attributes: Any = None  # posedraw.eval.attributes.Reading of the single-person drawings, or None
    attribute_rows: list[int] = field(default_factory=list)  # which drawings it read
    ground_truth: dict = field(default_factory=dict)
    detections: list[dict] = field(default_factory=list)


def image_pose_scores(detected: Pose, target: Pose) -> tuple[float, float]:
    """(OKS, PCK@0.1) of one drawing over its asked-for people: the drawing's pose score."""
    found = with_people(detected, target.num_people)
    return oks(found, target).mean, pck(found, target, 0.1).mean


def score(
    drawings: list[Drawing], detector: Detector, clip: NamedClip | None = None, attributes: bool = True
) -> Scores:
    """Detect, then score every drawing once."""
    detected = detect_drawings(drawings, detector)
    targets = [d.pose for d in drawings]
    per_image = np.array([image_pose_scores(p, t) for p, t in zip(detected, targets)]).reshape(-1, 2)
    scores = Scores(drawings, detected, np.nan_to_num(per_image[:, 0]), np.nan_to_num(per_image[:, 1]),
                    np.array([people_found(p) for p in detected]), person_count_errors(detected, targets),
                    np.full(len(drawings), np.nan))  # fmt: skip
    scores.ground_truth = coco_ground_truth(targets)
    scores.detections = coco_detections(detected, MIN_JOINTS)
    if clip is not None:
        scores.clip = clip_score_each(drawings, clip)
    if attributes:
        read_attributes(scores)
    return scores


def clip_score_each(drawings: Sequence[Drawing], clip: NamedClip) -> np.ndarray:
    """Each drawing's CLIP score against its prompt; NaN for a drawing without one."""
    from posedraw.eval.image_quality import clip_scores

    out = np.full(len(drawings), np.nan)
    rows = [i for i, d in enumerate(drawings) if d.prompt]
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        found = clip_scores(
            clip.clip, torch.stack([drawings[i].image for i in chunk]), [drawings[i].prompt for i in chunk]
        )
        out[chunk] = found.numpy()
    return out


def read_attributes(scores: Scores) -> None:
    """The toy attribute judge's reading of the single-person drawings whose prompt names an attribute."""
    from posedraw.eval.attributes import classify, load_classifier, prompt_attributes

    rows = [i for i, d in enumerate(scores.drawings) if d.pose.num_people == 1 and prompt_attributes(d.prompt)]
    if not rows:
        return
    images = torch.stack([scores.drawings[i].image for i in rows])
    scores.attributes = classify(load_classifier(), images, [scores.drawings[i].pose for i in rows])
    scores.attribute_rows = rows


def _rounded(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def summarize(scores: Scores, rows: Sequence[int]) -> dict[str, Any]:
    """The metrics of a group of drawings."""
    rows = list(rows)
    targets = [scores.drawings[i].pose for i in rows]
    pose = fidelity([scores.detected[i] for i in rows], targets)
    ap = keypoint_ap(scores.ground_truth, scores.detections, [i + 1 for i in rows])
    clip = scores.clip[rows]
    metrics: dict[str, Any] = {
        "drawings": len(rows), "people": int(sum(people_asked(t) for t in targets)),
        **{name: _rounded(ap[name]) for name in STATS},
        "pck@0.1": _rounded(pose.pck), "oks": _rounded(pose.oks), "left_right_swap_rate": _rounded(pose.swap_rate),
        "person_count_error": _rounded(float(scores.count_error[rows].mean())),
        "clip_score": _rounded(float(np.nanmean(clip))) if np.isfinite(clip).any() else None,
    }  # fmt: skip
    metrics.update(attribute_summary(scores, rows))
    return metrics


def attribute_summary(scores: Scores, rows: Sequence[int]) -> dict[str, Any]:
    """Attribute accuracy of the drawings of `rows` the judge read, and how many attributes it scored."""
    from posedraw.eval.attributes import Reading, attribute_accuracy

    wanted = set(rows)
    picked = [k for k, i in enumerate(scores.attribute_rows) if i in wanted]
    if scores.attributes is None or not picked:
        return {"attribute_accuracy": None, "attributes_scored": 0}
    reading = Reading({n: v[picked] for n, v in scores.attributes.predicted.items()},
                      {n: v[picked] for n, v in scores.attributes.visible.items()})  # fmt: skip
    report = attribute_accuracy(reading, [scores.drawings[scores.attribute_rows[k]].prompt for k in picked])
    scored = sum(report.counts.values())
    return {"attribute_accuracy": _rounded(report.mean) if scored else None, "attributes_scored": scored}


def breakdown(scores: Scores, rows: Sequence[int], key: Callable[[Drawing], Any]) -> dict[str, dict]:
    groups: dict[Any, list[int]] = {}
    for i in rows:
        groups.setdefault(key(scores.drawings[i]), []).append(i)
    return {str(k): summarize(scores, groups[k]) for k in sorted(groups, key=_order)}


# --- the report ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """Real images and the extractor whose features the drawings are compared with them by."""

    folder: Path
    features: torch.Tensor  # (N, D)
    extractor: Any  # posedraw.eval.image_quality.FeatureExtractor


@dataclass
class Report:
    data: dict[str, Any]  # what report.json holds
    scores: Scores
    runs: dict[str, list[int]]


def build_report(folders: Sequence[Path], detector: str = "toy", reference: Reference | None = None,
                 clip: NamedClip | None = None, compare: bool = False) -> Report:  # fmt: skip
    """Read, detect, measure and summarize; nothing is written."""
    judge = load_detector(detector)
    drawings = read_drawings(folders)
    scores = score(drawings, judge, clip, attributes=detector != "mediapipe")
    runs = group_runs(drawings, compare)
    fakes = None if reference is None else image_features(reference.extractor, [d.pixels for d in drawings])
    data: dict[str, Any] = {
        "protocol": "HumanSD: COCO OKS AP/AR of re-detected people, person count error, FID/KID, CLIP score; "
                    "with posedraw's PCK@0.1, OKS, left/right swaps and toy attribute accuracy",
        "folders": [str(f) for f in folders],
        "detector": detector,
        "detector_counts": COUNTS.get(detector, COUNTS["toy"]),
        "person_found_with_joints": MIN_JOINTS,
        "reference": None if reference is None else {
            "folder": str(reference.folder), "images": len(reference.features), "extractor": reference.extractor.label},
        "clip": None if clip is None else clip.name,
        "grouped_by": "folder" if compare else ", ".join(varying_settings(drawings)) or "nothing (one run)",
        "runs": {},
    }  # fmt: skip
    for label, rows in runs.items():
        metrics = summarize(scores, rows)
        if reference is not None:
            found = distances(reference.features, fakes[rows], reference.extractor.label)
            metrics.update({k: _rounded(v) if isinstance(v, float) else v for k, v in found.items()})
        data["runs"][label] = {
            "folders": sorted({str(scores.drawings[i].folder) for i in rows}),
            "settings": shared_settings([scores.drawings[i] for i in rows]),
            "metrics": metrics,
            "per_kind": breakdown(scores, rows, lambda d: d.kind),
            "per_people": breakdown(scores, rows, lambda d: people_asked(d.pose)),
        }
    if compare and len(runs) > 1:
        data["differences"] = differences(data["runs"])
    data["drawings"] = [drawing_row(scores, i, label) for label, rows in runs.items() for i in rows]
    return Report(data, scores, runs)


def shared_settings(drawings: Sequence[Drawing]) -> dict[str, Any]:
    """The settings every drawing of a run shares."""
    first = drawings[0].settings
    return {k: v for k, v in first.items() if all(d.settings.get(k, object()) == v for d in drawings)}


def differences(runs: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Each run's numeric metrics less the first run's (the baseline)."""
    base_label, *others = runs
    base = runs[base_label]["metrics"]
    out = {}
    for label in others:
        metrics = runs[label]["metrics"]
        out[f"{label} - {base_label}"] = {k: round(v - base[k], 4) for k, v in metrics.items()
                                          if _is_number(v) and _is_number(base.get(k))}  # fmt: skip
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def drawing_row(scores: Scores, index: int, run: str) -> dict[str, Any]:
    drawing = scores.drawings[index]
    return {"file": str(drawing.path), "run": run, "kind": drawing.kind, "people": people_asked(drawing.pose),
            "people_found": int(scores.found[index]), "oks": _rounded(scores.oks[index]),
            "pck@0.1": _rounded(scores.pck[index]), "clip_score": _rounded(scores.clip[index])}  # fmt: skip


def write_report(report: Report, out: Path, best: int = 8) -> None:
    """report.json and report.html in `out`, written as a whole (the folder is replaced only when both are
    complete). `out` must be new, empty or an earlier report's folder."""
    import json

    from posedraw.eval.report_page import render_page
    from posedraw.io import atomic_dir

    check_out(out, [Path(f) for f in report.data["folders"]])
    page = render_page(report, best)
    with atomic_dir(out) as tmp:
        (tmp / "report.json").write_text(json.dumps(report.data, indent=1) + "\n", encoding="utf-8")
        (tmp / "report.html").write_text(page, encoding="utf-8")


def check_out(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an output folder whose replacement would delete something else: an input folder (or one
    holding it), or a folder with files that is not an earlier report."""
    target = out.resolve()
    for folder in inputs:
        if folder.resolve() == target or target in folder.resolve().parents:
            raise PosedrawError(f"--out {out}: holds the drawings of {folder}; expected a folder of its own")
    if target.is_dir() and any(target.iterdir()) and not (target / "report.json").is_file():
        raise PosedrawError(f"--out {out}: a folder with other files; expected a new folder or an earlier report's")
