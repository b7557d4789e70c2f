"""The studio's per-person prompts: on the request's pose, checked like any text, drawn by the built-in
diffusion model and refused in one line by a model without them; and the page's prompt field of the
selected person (in a real browser)."""

from __future__ import annotations

import copy
import json

import pytest

pytest.importorskip("fastapi")

from posedraw.pose.core import MAX_PROMPT_CHARS
from tests.browser_helpers import CHROMIUM, browser_missing
from tests.studio_helpers import STANDING, RunningServer, close_studio, make_studio, small_limits_client

REFUSAL = "pose: people's prompts: this model was not trained with per-person prompts"


def prompted(prompt) -> dict:
    """The standing pose with its one person prompted."""
    pose = copy.deepcopy(STANDING)
    pose["people"][0]["prompt"] = prompt
    return pose


@pytest.fixture
def client(tmp_path):
    with small_limits_client(tmp_path) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/api/preview", "/api/jobs"])
def test_a_prompt_on_a_person_is_refused_by_a_model_without_them_as_one_line(client, tmp_path, path):
    response = client.post(path, json={"pose": prompted("red hair"), "model": "builtin:transformer"})
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert message.startswith(REFUSAL) and "\n" not in message
    assert not (tmp_path / "gallery").exists() or not list((tmp_path / "gallery").glob("*.png"))


@pytest.mark.parametrize(
    ("pose", "options", "words"),
    [
        (prompted(7), {}, "pose: people[0].prompt: expected a text (what to draw for this person), got 7"),
        (prompted(["red"]), {}, "pose: people[0].prompt: expected a text"),
        (prompted("x" * (MAX_PROMPT_CHARS + 1)), {}, f"prompt: expected a text of at most {MAX_PROMPT_CHARS}"),
        (STANDING, {"person_prompts": ["red hair"]}, "options.person_prompts: not settable from the studio (give each"),
        (STANDING, {"person_negative_prompts": ["x"]}, "options.person_negative_prompts: not settable"),
    ],
)  # fmt: skip
def test_bad_per_person_prompts_are_one_line_bad_requests(client, pose, options, words):
    response = client.post("/api/preview", json={"pose": pose, "options": options})
    assert response.status_code == 400 and words in response.json()["error"]
    assert "\n" not in response.json()["error"]


def test_the_builtin_model_draws_each_persons_prompt(client):
    def drawn(prompt: str) -> bytes:
        response = client.post("/api/preview", json={"pose": prompted(prompt), "options": {"steps": 4}})
        assert response.status_code == 200, response.text
        return response.content

    assert drawn("red hair, long hair") != drawn("blonde hair, short hair")


def test_an_empty_prompt_is_no_prompt_and_draws(client):
    response = client.post("/api/preview", json={"pose": prompted(""), "options": {"steps": 2}})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"


def test_models_offer_no_per_person_option_and_the_pose_routes_keep_or_note_the_prompts(client):
    for model in client.get("/api/models").json():
        assert not any(name.startswith("person_") for name in model["options"])
    imported = client.post("/api/pose/import", json=prompted("red hair")).json()
    assert imported["pose"]["people"][0]["prompt"] == "red hair" and imported["notes"] == []
    exported = client.post("/api/pose/export?format=openpose", json=prompted("red hair"))
    assert exported.status_code == 200 and "per-person prompts" in " ".join(
        json.loads(exported.headers["X-Posedraw-Notes"])
    )
    schema = client.get("/openapi.json").json()
    assert "prompt" in json.dumps(schema)


# --- the page ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # a real browser and server
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_the_selected_persons_prompt_field_puts_the_prompt_on_that_person_only(tmp_path):
    from playwright.sync_api import sync_playwright

    studio = make_studio(tmp_path / "gallery")
    try:
        with RunningServer(studio) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            sent: list[dict] = []
            page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/api/preview") else None)
            page.goto(server.url)
            page.wait_for_selector("body[data-ready=true]")
            assert page.is_hidden("#person-prompt-box")  # nobody selected
            page.click("#add-person")
            page.click("#canvas circle[data-person='1'][data-joint='nose']")
            assert page.is_visible("#person-prompt-box") and page.text_content("#person-prompt-who") == "person 1"
            page.fill("#person-prompt", "blonde hair, green dress")
            page.press("#person-prompt", "Enter")
            page.wait_for_function("() => Number(document.getElementById('drawing').dataset.seq || 0) > 0")
            prompted_body = next(body for body in sent if len(body["pose"]["people"]) == 2
                                 and body["pose"]["people"][1].get("prompt"))  # fmt: skip
            people = prompted_body["pose"]["people"]
            assert people[1]["prompt"] == "blonde hair, green dress" and "prompt" not in people[0]
            page.wait_for_function(  # the drawing of that request (or a later one) is shown, no error
                f"() => Number(document.getElementById('drawing').dataset.seq) >= {prompted_body['seq']}",
                timeout=30000,
            )
            assert "per-person" not in page.text_content("#message")
            page.click("#canvas circle[data-person='0'][data-joint='nose']")
            assert page.text_content("#person-prompt-who") == "person 0" and page.input_value("#person-prompt") == ""
            page.click("#canvas circle[data-person='1'][data-joint='left_hip']")
            assert page.input_value("#person-prompt") == "blonde hair, green dress"
            browser.close()
    finally:
        close_studio(studio)
