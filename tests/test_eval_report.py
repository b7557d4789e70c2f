"""`posedraw eval report`: COCO AP by pycocotools, person count error, FD/KD by torchmetrics, the report files
and the page in a browser."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from posedraw.data.images import to_tensor
from posedraw.data.toy import make_toy_sample, make_toy_scene
from posedraw.eval.coco_ap import coco_detections, coco_ground_truth, keypoint_ap
from posedraw.eval.fidelity import detect
from posedraw.eval.image_quality import distances, frechet_distance, image_features, kernel_distance
from posedraw.eval.person_count import person_count_errors
from posedraw.eval.report import pose_kind
from posedraw.pose import JOINTS, Pose

from .browser_helpers import CHROMIUM, browser_missing
from .cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
HELD_OUT = 900_000_000


# --- COCO AP --------------------------------------------------------------------------------------------
def _person(rng: np.random.Generator, x0: float, absent: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    xy = np.stack([x0 + rng.uniform(0, 30, 17), rng.uniform(5, 60, 17)], axis=1).round(1)
    state = np.full(17, 2)
    state[list(absent)] = 0
    return xy, state


def _coco_by_hand(targets: list[tuple[np.ndarray, np.ndarray]], image_of: list[int]) -> dict:
    """The ground truth as one would write a COCO keypoint file by hand (box of the labelled joints)."""
    annotations = []
    for k, ((xy, state), image) in enumerate(zip(targets, image_of)):
        labelled = xy[state > 0]
        x0, y0 = labelled.min(0)
        w, h = labelled.max(0) - labelled.min(0)
        keypoints = [v for (x, y), s in zip(np.where(state[:, None] > 0, xy, 0), state) for v in (x, y, s)]
        annotations.append({"id": k + 1, "image_id": image, "category_id": 1, "iscrowd": 0, "area": w * h,
                            "bbox": [x0, y0, w, h], "num_keypoints": int((state > 0).sum()),
                            "keypoints": [float(v) for v in keypoints]})  # fmt: skip
    images = [{"id": i, "width": 100, "height": 100} for i in sorted(set(image_of))]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(JOINTS), "skeleton": []}]}  # fmt: skip


def test_ap_of_hand_made_detections_equals_pycocotools_on_the_same_data(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    people = [_person(rng, 5), _person(rng, 55, absent=(3, 4)), _person(rng, 10), _person(rng, 20, absent=(15, 16))]
    image_of = [1, 1, 2, 3]  # two people in image 1
    noise = [1.0, 3.0, 0.5, 6.0]
    scores = [0.9, 0.4, 0.7, 0.8]
    found = [(xy + rng.normal(0, s, xy.shape), sc) for (xy, _), s, sc in zip(people, noise, scores)]

    (tmp_path / "gt.json").write_text(json.dumps(_coco_by_hand(people, image_of)))
    results = [{"image_id": image, "category_id": 1, "score": score,
                "keypoints": [float(v) for x, y in xy for v in (x, y, 2)]}
               for (xy, score), image in zip(found, image_of)]  # fmt: skip
    truth = COCO(str(tmp_path / "gt.json"))
    direct = COCOeval(truth, truth.loadRes(results), iouType="keypoints")
    direct.evaluate(), direct.accumulate(), direct.summarize()

    def pose_of(rows: list[int], points) -> Pose:
        return Pose(np.stack([points[r][0] for r in rows]), np.stack([points[r][1] for r in rows]), 100, 100)

    images = ([0, 1], [2], [3])
    targets = [pose_of(rows, people) for rows in images]
    detected = [pose_of(rows, [(xy, np.full(17, 2)) for xy, _ in found]) for rows in images]
    detected = [d.replace(confidence=np.array([[scores[r]] * 17 for r in rows])) for d, rows in zip(detected, images)]
    ours = keypoint_ap(coco_ground_truth(targets), coco_detections(detected))
    assert 0.0 < direct.stats[0] < 1.0  # a case where ranking and thresholds matter
    for name, index in {"ap": 0, "ap50": 1, "ap75": 2, "ar": 5, "ar50": 6, "ar75": 7}.items():
        assert ours[name] == pytest.approx(direct.stats[index], abs=1e-12), name


def test_perfect_detections_score_one_and_shifted_ones_less():
    targets = [make_toy_sample(HELD_OUT + i, 64).pose for i in range(8)] + [make_toy_scene(HELD_OUT, 64, 3).pose]
    truth = coco_ground_truth(targets)
    perfect = keypoint_ap(truth, coco_detections(targets))
    assert perfect == {name: 1.0 for name in perfect}
    aps = [keypoint_ap(truth, coco_detections([t.replace(xy=t.xy + shift) for t in targets]))["ap"]
           for shift in (1.0, 2.0, 4.0)]  # fmt: skip
    assert 1.0 > aps[0] > aps[1] > aps[2]
    assert keypoint_ap(truth, [])["ap"] == 0.0  # nothing found: nothing recalled


def test_a_joint_the_detector_did_not_find_is_a_miss():
    targets = [make_toy_sample(HELD_OUT + i, 64).pose for i in range(8)]
    blind = [t.replace(state=np.where(np.arange(17) < 5, 0, t.state)) for t in targets]  # no face found
    truth = coco_ground_truth(targets)
    assert keypoint_ap(truth, coco_detections(blind))["ap"] < keypoint_ap(truth, coco_detections(targets))["ap"]


# --- person count -----------------------------------------------------------------------------------------
def test_person_count_error_counts_a_figure_that_was_not_drawn():
    """True renders of scenes of 1, 2 and 3 figures: nobody missing; a scene's background alone: all missing."""
    from PIL import Image

    scenes = [make_toy_scene(HELD_OUT + 5, 64, n) for n in (1, 2, 3)]
    empty = Image.new("RGB", (64, 64), scenes[2].image.getpixel((0, 0)))
    images = torch.stack([to_tensor(s.image) for s in scenes] + [to_tensor(empty)])
    targets = [s.pose for s in scenes] + [scenes[2].pose]
    errors = person_count_errors(detect(images, "toy", targets), targets)
    assert errors.tolist() == [0.0, 0.0, 0.0, 3.0]
    assert errors.mean() == 0.75


# --- FD / KD ------------------------------------------------------------------------------------------------
class TinyExtractor(nn.Module):
    """A fixed random projection of 4x4-pooled pixels: uint8 images -> 6 features."""

    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.randn(48, 6, generator=torch.Generator().manual_seed(0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)
        return torch.tanh(pooled @ self.weight)


def _images(seed: int, count: int, shift: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(count, 3, 16, 16, generator=generator) * 200 + shift
    return base.clamp(0, 255).to(torch.uint8)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_fd_and_kd_equal_torchmetrics_on_the_same_features_and_the_closed_form():
    from scipy import linalg
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _images(1, 30, 0.0), _images(2, 30, 40.0)
    f_real, f_fake = image_features(TinyExtractor(), list(real)), image_features(TinyExtractor(), list(fake))

    fid = FrechetInceptionDistance(feature=TinyExtractor())  # torchmetrics extracting the features itself
    fid.update(real, real=True)
    fid.update(fake, real=False)
    ours = frechet_distance(f_real, f_fake)
    assert ours == pytest.approx(float(fid.compute()), rel=1e-5)
    a, b = f_real.double().numpy(), f_fake.double().numpy()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    closed = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert ours == pytest.approx(closed, rel=1e-5) and ours > 0.01

    kid = KernelInceptionDistance(feature=TinyExtractor(), subsets=5, subset_size=20)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        expected = tuple(float(v) for v in kid.compute())
    ours_kid = kernel_distance(f_real, f_fake, subsets=5, subset_size=20, seed=3)
    assert ours_kid == pytest.approx(expected, rel=1e-4)  # torchmetrics' features here are float32, ours float64
    # every image in the one subset: the unbiased MMD^2 with the cubic kernel (x.y / d + 1)^3
    mean, _ = kernel_distance(f_real, f_fake, subsets=1, subset_size=30)
    assert mean == pytest.approx(_mmd(a, b), rel=1e-5) and mean > 0


def _mmd(x: np.ndarray, y: np.ndarray) -> float:
    d, m = x.shape[1], len(x)
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def test_distances_by_another_extractor_are_never_called_fid():
    f_real, f_fake = torch.randn(10, 4, generator=torch.Generator().manual_seed(0)), torch.randn(12, 4)
    named = distances(f_real, f_fake, "toy-detector")
    assert {"FD_toy-detector", "KD_toy-detector"} <= set(named) and "fid" not in named and "kid" not in named
    assert {"fid", "kid"} <= set(distances(f_real, f_fake, "inception"))


def test_pose_kinds_come_from_the_pose_names():
    assert [pose_kind(n) for n in ("walking_007", "arms_raised", "two_figures", "studio-3fa9c0d2e1b4", "scene_12")] == [
        "walking", "arms_raised", "two_figures", "studio", "scene"]  # fmt: skip


# --- the command ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Path:
    """Drawings of the built-in model (2 sampler steps) at pose guidance 1 and 2, and toy renders as the
    reference images."""
    from posedraw.pipelines import load_pipeline
    from posedraw.pipelines.outputs import Job, Outputs, run_jobs
    from posedraw.pose import read_pose

    root = tmp_path_factory.mktemp("report")
    pipeline = load_pipeline("builtin")
    pipeline.set_progress_bar_config(disable=True)
    poses = {name: read_pose(REPO / "examples" / "poses" / f"{name}.json") for name in ("standing", "two_figures")}
    jobs = [Job(pose, name, seed) for name, pose in poses.items() for seed in range(2)]
    for guidance in (1.0, 2.0):
        options = {"steps": 2, "guidance": guidance, "prompt": "red hair, blue dress"}
        run_jobs(pipeline, jobs, options, "builtin", root / f"guidance-{guidance:g}", Outputs(grid=True), batch_size=4)
    (root / "real").mkdir()
    for i in range(4):
        make_toy_sample(HELD_OUT + i, 64).image.save(root / "real" / f"real{i}.png")
    return root


def _report_args(drawn: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "report", str(drawn / "guidance-1"), str(drawn / "guidance-2"), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def report(drawn) -> Path:
    """The report of both folders against the real images (toy-detector features) with the tiny CLIP."""
    from posedraw.cli.main import run

    out = drawn / "report"
    run(_report_args(drawn, out, "--reference", str(drawn / "real"), "--features", "toy-detector",
                     "--clip", "posedraw-tiny-clip", "--best", "2"))  # fmt: skip
    return out


@pytest.mark.slow
def test_the_report_holds_every_measure_per_run_kind_and_number_of_people(report):
    data = json.loads((report / "report.json").read_text())
    assert list(data["runs"]) == ["guidance 1", "guidance 2"] and data["grouped_by"] == "guidance"
    for run in data["runs"].values():
        metrics = run["metrics"]
        assert metrics["drawings"] == 4 and metrics["people"] == 6  # the _grid.png files are not drawings
        for name in ("ap", "ap50", "ar", "pck@0.1", "oks", "left_right_swap_rate", "person_count_error",
                     "FD_toy-detector", "KD_toy-detector", "clip_score", "attribute_accuracy"):  # fmt: skip
            assert isinstance(metrics[name], float), name
        assert "fid" not in metrics and "kid" not in metrics  # not the Inception features
        assert set(run["per_kind"]) == {"standing", "two_figures"} and set(run["per_people"]) == {"1", "2"}
        assert run["per_people"]["2"]["drawings"] == 2 and run["per_people"]["2"]["attribute_accuracy"] is None
    assert data["reference"] == {"folder": str(report.parent / "real"), "images": 4, "extractor": "toy-detector"}
    assert len(data["drawings"]) == 8 and {"oks", "pck@0.1", "people_found"} <= set(data["drawings"][0])
    assert not [p.name for p in report.parent.iterdir() if p.name.startswith(".report")]  # no temporary left


@pytest.mark.slow
def test_compare_puts_the_folders_side_by_side_with_their_differences(drawn, tmp_path, capsys):
    code, out, err = run_cli(capsys, *_report_args(drawn, tmp_path / "compared", "--compare"))
    assert code == 0, err
    data = json.loads((tmp_path / "compared" / "report.json").read_text())
    assert list(data["runs"]) == ["guidance-1", "guidance-2"] and data["reference"] is None
    difference = data["differences"]["guidance-2 - guidance-1"]
    runs = data["runs"]
    assert difference["oks"] == pytest.approx(
        runs["guidance-2"]["metrics"]["oks"] - runs["guidance-1"]["metrics"]["oks"]
    )
    assert "guidance-1: 4 drawings, AP" in out
    page = (tmp_path / "compared" / "report.html").read_text()
    assert "Δ guidance-2 - guidance-1" in page


@pytest.mark.parametrize(
    "case, expected",
    [
        ("no_recipe", "no posedraw metadata"),
        ("empty", "no PNG drawings"),
        ("no_weights", "no such Inception weights file"),
        ("out_holds_drawings", "holds the drawings of"),
        ("bad_detector", "--detector: expected toy, mediapipe or a toy pose detector's weights file"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(drawn, tmp_path, capsys, case, expected):
    folder = tmp_path / "drawings"
    shutil.copytree(drawn / "guidance-1", folder)
    out, extra = tmp_path / "out", []
    if case == "no_recipe":
        make_toy_sample(1, 64).image.save(folder / "stray.png")
    elif case == "empty":
        folder = tmp_path / "nothing"
        folder.mkdir()
    elif case == "no_weights":
        extra = ["--reference", str(drawn / "real"), "--inception-weights", str(tmp_path / "missing.pth")]
    elif case == "out_holds_drawings":
        out = folder
    elif case == "bad_detector":
        extra = ["--detector", "yolo"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli(capsys, "eval", "report", folder, "--out", out, *extra)
    assert code == 2 and err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- the page in a browser ------------------------------------------------------------------------------------
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
@pytest.mark.slow
def test_the_page_opens_offline_and_shows_the_table_and_the_images(report):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto((report / "report.html").as_uri())
        page.wait_for_load_state("load")
        rows = page.locator("#summary tbody tr")
        assert rows.count() >= 10 and page.locator("#summary th").nth(1).inner_text() == "guidance 1"
        assert "AP (OKS)" in page.locator("#summary").inner_text()
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        browser.close()
    plots, tiles = 10, 2 * 2 * 2  # 8 measures and FD, KD; per run the 2 best and 2 worst drawings
    assert len(sizes) == plots + tiles and all(done and width > 0 for done, width in sizes), sizes
    assert all(url.startswith(("file:", "data:")) for url in requested), requested


@pytest.mark.slow
def test_a_detector_given_by_its_weights_file_judges_like_the_shipped_one(drawn):
    from posedraw.eval.report import build_report
    from posedraw.eval.toy_detector import WEIGHTS

    shipped = build_report([drawn / "guidance-1"], "toy").data["runs"]
    from_file = build_report([drawn / "guidance-1"], str(WEIGHTS)).data["runs"]
    assert [r["metrics"] for r in from_file.values()] == [r["metrics"] for r in shipped.values()]


def test_inception_weights_that_are_not_a_state_dict_of_its_tensors_are_refused(tmp_path):
    import pickle

    from posedraw.errors import CheckpointError
    from posedraw.eval.image_quality import InceptionFeatures

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth could not be loaded \(RuntimeError\)"):
        InceptionFeatures(tmp_path / "other.pth")
    (tmp_path / "code.pth").write_bytes(pickle.dumps(Path("x")))  # a pickle of something else: never unpickled
    with pytest.raises(CheckpointError, match="not a PyTorch state dict of tensors"):
        InceptionFeatures(tmp_path / "code.pth")
