"""Schemathesis over the API's own OpenAPI schema, against a real uvicorn server on
127.0.0.1 holding a scored batch run: every check schemathesis has (server errors, status
codes, content types, headers and schemas of the answers, schema-valid requests accepted,
schema-invalid ones rejected, missing headers, methods), on generated valid and invalid
requests to every operation.

Generated ids are almost never stored ones, so half of the valid cases are seeded with real
visitors (lookups then answer 200) and recent, well-formed events (posts then re-score).

The schema states the shape of a request; ingestion's value rules are checked by the server
and partly depend on its clock (an event time before ``min_event_time`` or later than now plus
the allowed skew): a request that breaks only those is a 422 with its own title
(``VALUE_RULES``), documented with the 422 answer. Those answers, and only those, are exempt
from "schema-valid requests are accepted"; every other check applies to them.

``PROPENSITY_FUZZ_EXAMPLES`` sets the examples per operation and mode (default 1000, the
acceptance of issue 23); each test is bounded by its timeout.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from serving.api.app import create_app
from tests.integration.serving.redis_server import free_port
from tests.integration.serving.world import World
from tests.integration.serving.world import settings as serving_settings
from tests.reliability.conftest import KEY

EXAMPLES = int(os.environ.get("PROPENSITY_FUZZ_EXAMPLES", "1000"))
load_all_checks()
#: Every check schemathesis registers, by name, so that a new one is not silently left out.
ALL_CHECKS = CHECKS.get_by_names(CHECKS.get_all_names())
#: 422 titles of ingestion's value rules (``serving.api.routes``), which the schema cannot
#: state: the one exemption from positive_data_acceptance.
VALUE_RULES = frozenset({"No valid events", "Invalid events", "Invalid as_of"})
CALLS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def base_url(scored: tuple[World, str, list[str]]) -> Iterator[str]:
    shared, name, _ = scored
    port = free_port()
    app = create_app(serving_settings(open_reads=False), shared.paths(name))
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
OPERATIONS = [
    ("GET", "/v1/visitors/{visitor_id}", POSITIVE),
    ("GET", "/v1/visitors/{visitor_id}", NEGATIVE),
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


def _recent_events(count: int, seconds_ago: list[int]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "event_time": (now - timedelta(seconds=ago)).isoformat(),
            "event_name": "page_view" if i % 2 else "add_to_cart",
        }
        for i, ago in zip(range(count), seconds_ago, strict=False)
    ]


def _seed(case: Any, visitor: str, seconds_ago: list[int]) -> None:
    """A valid case made realistic: a stored visitor, and events the server accepts."""
    if "visitor_id" in case.path_parameters:
        case.path_parameters["visitor_id"] = visitor
    # A canonical body (a GA4 body may carry visitor_id only as null: not seeded).
    if isinstance(case.body, dict) and isinstance(case.body.get("visitor_id"), str):
        case.body["visitor_id"] = visitor
        case.body.pop("as_of", None)
        if "events" in case.body:
            case.body["events"] = _recent_events(max(len(case.body["events"]), 1), seconds_ago)


def _exempt(mode: GenerationMode, response: Any) -> bool:
    """A valid request refused by value rules only: a missing field is the schema's to state
    (event_time and event_name are required, non-null, non-blank), so it is never exempt."""
    if mode is not POSITIVE or response.status_code != 422:
        return False
    problem = response.json()
    reasons = [str(e.get("reason", "")) for e in problem.get("errors") or []]
    return problem.get("title") in VALUE_RULES and not any(
        r.startswith("missing_") for r in reasons
    )


@pytest.mark.xdist_group("fuzz")
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS)
def test_every_check_passes(
    api_schema: Any,
    scored: tuple[World, str, list[str]],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    """Positive: requests the schema allows (half seeded with real visitors and events);
    negative: requests it forbids (must be refused)."""
    operation = api_schema[path][method]
    visitors = scored[2]

    @given(
        case=operation.as_strategy(generation_mode=mode),
        visitor=st.sampled_from(visitors),
        seeded=st.booleans(),
        seconds_ago=st.lists(st.integers(1, 86_400), min_size=1, max_size=5),
    )
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def call(case: Any, visitor: str, seeded: bool, seconds_ago: list[int]) -> None:
        if mode is POSITIVE and seeded:
            _seed(case, visitor, seconds_ago)
        response = case.call(headers=KEY)
        CALLS[f"{method} {path} {mode.value} {response.status_code}"] += 1
        excluded = [positive_data_acceptance] if _exempt(mode, response) else []
        case.validate_response(response, checks=ALL_CHECKS, excluded_checks=excluded, headers=KEY)

    call()
    if mode is POSITIVE and path in {"/v1/visitors/{visitor_id}", "/v1/events", "/v1/score"}:
        reached = sum(n for k, n in CALLS.items() if k.startswith(f"{method} {path} positive 200"))
        assert reached, f"no generated {method} {path} reached a real visitor"
