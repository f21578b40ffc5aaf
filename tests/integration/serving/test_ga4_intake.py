"""POST /v1/events with GA4 Measurement Protocol bodies on the real API (issue 20): the
recommended e-commerce events read, one event per item with the order's value split, the
rest ignored by name, and the visitor scored exactly as the same events posted canonically."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.api.segment import SegmentEventsResponse
from serving.store.sqlite import SqliteScoreStore
from tests.integration.serving.world import KEY, World, settings, world

#: 2024-02-09T10:00:00Z in microseconds, as GA4 writes it.
AT = int(datetime(2024, 2, 9, 10, tzinfo=UTC).timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    return world(tmp_path_factory)


@pytest.fixture
def client(shared: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings(), shared.paths("ga4-intake"))) as test_client:
        yield test_client


def _purchase(visitor: str) -> dict[str, Any]:
    return {
        "client_id": visitor,
        "user_id": "ga4-user",
        "timestamp_micros": str(AT),
        "events": [
            {"name": "view_item", "params": {"items": [{"item_id": "a", "price": 10}]}},
            {
                "name": "purchase",
                "params": {
                    "transaction_id": "t-1",
                    "value": 50.0,
                    "currency": "EUR",
                    "session_id": "s-1",
                    "items": [
                        {"item_id": "a", "price": 10, "quantity": 1},
                        {"item_id": "b", "item_category": "x", "price": 20, "quantity": 1},
                    ],
                },
                "timestamp_micros": AT + 60_000_000,
            },
            {"name": "login", "params": {"method": "Google"}},
            {"name": "session_start"},
        ],
    }


def _canonical(visitor: str) -> dict[str, Any]:
    """The same events as the canonical body writes them: 50.0 split 1:2 over the items."""
    common = {"user_id": "ga4-user"}
    order = {
        **common,
        "event_time": "2024-02-09T10:01:00Z",
        "event_name": "purchase",
        "transaction_id": "t-1",
        "session_id": "s-1",
    }
    return {
        "visitor_id": visitor,
        "events": [
            {**common, "event_time": "2024-02-09T10:00:00Z", "event_name": "view_item",
             "item_id": "a", "price": 10},
            {**order, "item_id": "a", "price": 10, "quantity": 1, "revenue": 50.0 * (10 / 30)},
            {**order, "item_id": "b", "item_category": "x", "price": 20, "quantity": 1,
             "revenue": 50.0 - 50.0 * (10 / 30)},
        ],
    }  # fmt: skip


def _score(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["scores"][0] if "scores" in body else body["score"]  # type: ignore[no-any-return]


def test_a_ga4_body_is_read_as_the_same_canonical_events(client: TestClient, shared: World) -> None:
    # Neither body names an as_of: both are scored as of their arrival, a moment apart.
    answer = client.post("/v1/events", json=_purchase("ga4-client"), headers=KEY)
    parsed = SegmentEventsResponse.model_validate(_answer_json(answer))
    assert (parsed.accepted, parsed.rejected) == (3, [])  # a view, two order rows
    assert parsed.ignored == {"login": 1, "session_start": 1}
    ga4 = _score(answer)
    canonical = _score(client.post("/v1/events", json=_canonical("ga4-twin"), headers=KEY))
    for field in ("score", "decile", "route", "reason", "expected_value"):
        assert ga4[field] == canonical[field], field
    stored = client.get("/v1/visitors/ga4-client", headers=KEY).json()
    assert stored["source"] == "real_time" and stored["score"] == ga4["score"]
    # The events kept are the canonical post's, field for field (the order's value split).
    store = SqliteScoreStore.open(shared.paths("ga4-intake").sqlite_path)
    kept = [orjson.loads(e) for e in store.get_state("ga4-client").posted_events]
    twin = [orjson.loads(e) for e in store.get_state("ga4-twin").posted_events]
    assert kept == twin and len(kept) == 3
    assert sum(e["revenue"] or 0 for e in kept) == pytest.approx(50.0)


def _answer_json(answer: Any) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_ga4_body_without_a_time_is_as_of_its_arrival_and_bad_values_are_refused(
    client: TestClient,
) -> None:
    body = {
        "client_id": "ga4-untimed",
        "events": [
            {"name": "add_to_cart", "params": {"items": [{"item_id": "a", "price": "ten"}]}},
            {"name": "add_to_cart", "params": {"items": [{"item_id": "b", "price": 3}]}},
        ],
    }
    parsed = SegmentEventsResponse.model_validate(
        _answer_json(client.post("/v1/events", json=body, headers=KEY))
    )
    assert parsed.accepted == 1
    assert [(r.index, r.reason) for r in parsed.rejected] == [(0, "bad_price")]


def test_a_ga4_body_needs_a_client_and_at_most_25_events(client: TestClient) -> None:
    event = {"name": "page_view"}
    no_client = client.post("/v1/events", json={"user_id": "u", "events": [event]}, headers=KEY)
    assert no_client.status_code == 422
    too_many = {"client_id": "c", "events": [event] * 26}
    assert client.post("/v1/events", json=too_many, headers=KEY).status_code == 422
    app_stream = {"app_instance_id": "ga4-app", "events": [event]}
    assert client.post("/v1/events", json=app_stream, headers=KEY).status_code == 200
    unkeyed = client.post("/v1/events", json={"client_id": "c", "events": [event]})
    assert unkeyed.status_code == 401
