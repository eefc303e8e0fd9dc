"""The HTTP API fuzzed from its own OpenAPI document (schemathesis): whatever a client sends,
the answer is never a 5xx and always matches the documented schema.

Examples per operation are bounded (:data:`MAX_EXAMPLES`), the data directory is fresh for the
run, and the job queue is not started (``run_jobs=False``), so no optimisation runs: accepted
jobs stay queued. The Server-Sent Events endpoints are left out (a stream of a queued job never
ends); their 404s and validation are tested in test_web_api.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from impasto.web.app import WebConfig, create_app  # noqa: E402

MAX_EXAMPLES = 15
CHECKS = (not_a_server_error, response_schema_conformance, status_code_conformance)


_DATA = tempfile.TemporaryDirectory(prefix="impasto-fuzz-")
APP = create_app(WebConfig(data_dir=Path(_DATA.name), run_jobs=False, allowed_hosts=None))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex=r"events$")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_fails_and_matches_its_schema(case):
    case.call_and_validate(checks=CHECKS)
