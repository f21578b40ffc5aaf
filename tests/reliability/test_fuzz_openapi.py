"""Schemathesis over the API's own OpenAPI schema, against a real uvicorn server on
127.0.0.1: generated valid and invalid requests to every operation must never get a 5xx,
and every answer must match the documented status codes, content types and schemas.

``PROPENSITY_FUZZ_EXAMPLES`` sets the examples per operation and mode (CI: the default below; the
issue 7 run used 1000). Writes carry a valid key, so the fuzzer reaches the handlers.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serving.api.app import create_app
from tests.integration.serving.redis_server import free_port
from tests.integration.serving.world import World
from tests.integration.serving.world import settings as serving_settings
from tests.reliability.conftest import KEY

EXAMPLES = int(os.environ.get("PROPENSITY_FUZZ_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CALLS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def base_url(scored: tuple[World, str, list[str]]) -> Iterator[str]:
    shared, name, _ = scored
    port = free_port()
    app = create_app(serving_settings(), shared.paths(name))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    print("fuzz calls per operation:", dict(sorted(CALLS.items())))


@pytest.fixture(scope="module")
def api_schema(base_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
#: Negative cases exist only where the schema forbids something (the request bodies).
OPERATIONS = [
    ("GET", "/v1/visitors/{visitor_id}", POSITIVE),
    ("GET", "/v1/model", POSITIVE),
    ("POST", "/v1/score", POSITIVE),
    ("POST", "/v1/score", NEGATIVE),
    ("POST", "/v1/events", POSITIVE),
    ("POST", "/v1/events", NEGATIVE),
    ("GET", "/healthz", POSITIVE),
    ("GET", "/readyz", POSITIVE),
    ("GET", "/metrics", POSITIVE),
    ("POST", "/v1/admin/reload", POSITIVE),
]


@pytest.mark.xdist_group("fuzz")
@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS)
def test_no_5xx_and_no_schema_violation(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    """Positive: requests the schema allows; negative: requests it forbids (must be 4xx)."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def call(case: Any) -> None:
        CALLS[f"{method} {path} {mode.value}"] += 1
        case.call_and_validate(headers=KEY, checks=CHECKS)

    call()
