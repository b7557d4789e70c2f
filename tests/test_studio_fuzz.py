"""A fuzz test of the studio's API, driven by its own OpenAPI description (schemathesis): requests that fit
the declared bodies and parameters, and requests that do not, to every operation. Whatever they hold,
the answer is never a 5xx (only a bug may give one).

Bounded and deterministic: a few derandomized examples per operation and mode; the studio's limits are
small so that the drawings valid requests ask for stay quick.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
import schemathesis  # the dev extra's, as hypothesis: not skipped when missing, so CI always fuzzes
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from posedraw.studio.app import create_app
from posedraw.studio.requests import Limits
from tests.studio_helpers import close_studio, make_studio

#: every operation of the API: a new one must be added here to be fuzzed (a test checks the list)
OPERATIONS = [
    ("GET", "/api/models"),
    ("GET", "/api/presets"),
    ("GET", "/api/skeleton"),
    ("POST", "/api/pose/import"),
    ("POST", "/api/pose/export"),
    ("POST", "/api/pose/skeleton"),
    ("POST", "/api/pose/detect"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/{job_id}"),
    ("DELETE", "/api/jobs/{job_id}"),
    ("GET", "/api/jobs/{job_id}/events"),
    ("GET", "/api/tune"),
    ("POST", "/api/tune"),
    ("POST", "/api/preview"),
    ("GET", "/api/images"),
    ("GET", "/api/images/{name}"),
]
#: requests with a body or parameters get more examples than the fixed ones, whose answer cannot vary
EXAMPLES = {"GET": 3, "DELETE": 10, "POST": 20}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    limits = Limits(max_steps=3, max_images=2, preview_steps=2, max_body=50_000, max_upload=50_000,
                    max_pixels=64 * 64)  # fmt: skip
    studio = make_studio(tmp_path_factory.mktemp("fuzz") / "gallery", queue=2, limits=limits)
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(studio))
    close_studio(studio)


def test_the_fuzzed_operations_are_the_api_s_and_declare_their_bodies(api):
    declared = {
        (operation.method.upper(), operation.path) for operation in (result.ok() for result in api.get_all_operations())
    }
    assert declared == set(OPERATIONS)
    for method, path in OPERATIONS:
        if method == "POST":
            assert api[path][method].body, f"{method} {path} declares no request body"


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_request_gets_a_server_error(api, method, path, mode):
    operation = api[path][method]
    if mode is GenerationMode.NEGATIVE and not any(body.media_type == "application/json" for body in operation.body):
        pytest.skip("no JSON body to make invalid (path and query values are any text; a photo any bytes)")

    @settings(max_examples=EXAMPLES[method], derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(mode))
    def never_5xx(case) -> None:
        response = case.call()
        assert response.status_code < 500, f"{case.as_curl_command()}\n-> {response.status_code} {response.text[:500]}"

    never_5xx()
