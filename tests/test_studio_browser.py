"""The studio page in a real browser: Playwright driving the system's Chromium (no browser download).

Skipped where Chromium or Playwright is missing, except in CI (CI=true), where `.ci/run` installs them.
Set POSEDRAW_STUDIO_SCREENSHOT=FILE to keep the page's screenshot (the README's image).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from posedraw.pose import dump_pose, parse_pose
from tests.browser_helpers import CHROMIUM, browser_missing
from tests.studio_helpers import STANDING, RunningServer, close_studio, make_studio

if browser_missing() is not None:
    pytest.skip(browser_missing(), allow_module_level=True)

pytestmark = pytest.mark.slow  # a real browser and server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, url: str, bypass_csp: bool = False):
    """A page at `url`, once it has drawn its first preview; with the Content-Security-Policy reports
    its console shows (the page must need nothing the policy forbids). Playwright evaluates the string
    predicates of `wait_for_function` with eval, which the policy forbids: a page that uses them
    bypasses the policy."""
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True, bypass_csp=bypass_csp)
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/api/preview") else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#drawing:not([data-seq='0'])")
    return page, sent, blocked


@pytest.fixture(scope="module")
def studio_page(tmp_path_factory, browser):
    from posedraw.models.clip import TINY, ClipSpec
    from posedraw.studio.tuning import Tuning

    out = tmp_path_factory.mktemp("studio") / "gallery"
    studio = make_studio(out)
    studio.tuning = Tuning(ClipSpec(TINY, None, None))  # the Tune button, with the tiny test CLIP
    with RunningServer(studio) as server:
        page, sent, _ = open_page(browser, server.url, bypass_csp=True)
        yield page, sent, server
    close_studio(studio)


def joint_xy(doc: dict, joint: str, person: int = 0) -> np.ndarray:
    entry = doc["people"][person]["joints"][joint]
    return np.array([entry["x"], entry["y"]])


def drag(page, joint: str, dx: float, dy: float, during=None) -> None:
    """Drag a joint by (dx, dy) screen pixels in 10 moves; `during()` runs before the button is released."""
    box = page.locator(f"#canvas circle[data-person='0'][data-joint='{joint}']").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=10)
    if during:
        during()
    page.mouse.up()


def pixels_per_screen_pixel(page) -> float:
    width = page.locator("#canvas").bounding_box()["width"]
    return 512 / width  # the standing preset's canvas is 512 wide


def settle(page, sent: list[dict], count: int) -> None:
    """Wait until the page has sent a preview after the first `count` and shows the newest one."""
    for _ in range(400):
        if len(sent) > count:
            break
        page.wait_for_timeout(50)
    assert len(sent) > count, "the page sent no preview"
    page.wait_for_function("n => Number(document.getElementById('drawing').dataset.seq) >= n", arg=len(sent))


def last_sent(sent: list[dict], quality: str | None = None) -> dict:
    return next(body for body in reversed(sent) if quality is None or body["quality"] == quality)


def test_dragging_a_joint_moves_it_by_the_dragged_amount_with_live_previews_then_undo(studio_page):
    page, sent, _ = studio_page
    before = len(sent)
    start = joint_xy(STANDING, "left_wrist")

    def live_preview_shown():
        page.wait_for_function("document.getElementById('drawing').dataset.quality === 'preview'", timeout=20000)

    drag(page, "left_wrist", 60, -40, during=live_preview_shown)
    page.wait_for_function("document.getElementById('drawing').dataset.quality === 'full'", timeout=20000)
    during = sent[before:]
    assert any(body["quality"] == "preview" for body in during)  # redrawn while the joint moved
    moved = joint_xy(last_sent(sent, "full")["pose"], "left_wrist")
    scale = pixels_per_screen_pixel(page)
    assert np.allclose(moved - start, [60 * scale, -40 * scale], atol=1.5)
    assert np.allclose(joint_xy(last_sent(sent)["pose"], "nose"), joint_xy(STANDING, "nose"), atol=0.01)
    count = len(sent)
    page.click("#undo")
    settle(page, sent, count)
    assert np.allclose(joint_xy(last_sent(sent)["pose"], "left_wrist"), start, atol=0.01)


def test_an_openpose_file_imports_and_the_pose_exports(studio_page, tmp_path):
    page, sent, _ = studio_page
    waving = parse_pose(page.evaluate("fetch('/api/presets').then(r => r.json())")["waving"])
    path = tmp_path / "waving_keypoints.json"
    path.write_text(json.dumps(dump_pose(waving, "openpose")))
    count = len(sent)
    page.set_input_files("#import", str(path))
    settle(page, sent, count)
    assert "imported waving_keypoints.json" in page.text_content("#message")
    assert np.allclose(parse_pose(last_sent(sent)["pose"]).xy, waving.xy, atol=0.05)
    page.select_option("#export-format", "coco")
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert np.allclose(parse_pose(exported).xy, waving.xy, atol=0.05)


def test_drawing_into_the_gallery_and_reloading_a_recipe(studio_page):
    page, sent, _ = studio_page
    page.select_option("#preset", "sitting")
    page.fill("#seed", "11")
    page.fill("#count", "1")
    page.click("#generate")
    item = page.wait_for_selector("#gallery .item", timeout=60000)
    name = item.get_attribute("data-name")
    page.wait_for_function("document.getElementById('cancel').disabled", timeout=60000)
    page.select_option("#preset", "standing")
    page.fill("#seed", "99")
    count = len(sent)
    page.click(f"#gallery .item[data-name='{name}'] button.load")
    settle(page, sent, count)
    assert page.input_value("#seed") == "11"
    sitting = parse_pose(page.evaluate("fetch('/api/presets').then(r => r.json())")["sitting"])
    assert np.allclose(parse_pose(last_sent(sent)["pose"]).xy, sitting.xy, atol=0.05)
    page.fill("#tune-steps", "3")
    page.click(f"#gallery .item[data-name='{name}'] button.tune")
    tuned = name.removesuffix(".png") + "_tuned.png"
    page.wait_for_selector(f"#gallery .item[data-name='{tuned}']", timeout=60000)
    page.wait_for_function("document.getElementById('cancel').disabled", timeout=60000)
    assert page.eval_on_selector("#progress", "p => p.value === p.max")  # the progress bar reached its end
    screenshot = os.environ.get("POSEDRAW_STUDIO_SCREENSHOT")
    if screenshot:
        page.screenshot(path=screenshot)


def test_the_page_works_under_its_security_policy_with_an_access_token_from_the_first_visit(browser, tmp_path):
    token = "a-token-for-the-browser-test"
    studio = make_studio(tmp_path / "gallery")
    with RunningServer(studio, token=token) as server:
        page, sent, blocked = open_page(browser, f"{server.url}/?token={token}")
        assert page.url == f"{server.url}/" and sent  # the token left the address; a preview was drawn
        shown = page.get_attribute("#drawing", "data-seq")
        page.select_option("#preset", "sitting")  # an edit: another preview, through the policy
        page.wait_for_selector(f"#drawing:not([data-seq='{shown}'])")
        assert page.get_attribute("#drawing", "src").startswith("blob:")
        assert blocked == []
        page.close()
    close_studio(studio)
