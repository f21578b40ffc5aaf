"""POST /v1/events with Segment / RudderStack bodies on the real API: calls mapped as ingest
maps them, each visitor re-scored and stored, X-Signature checked with a shared secret."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.api.schemas import EventsResponse
from serving.api.segment import SegmentEventsResponse
from tests.integration.serving.world import KEY, World, event, settings, world

SECRET = "webhook-secret"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    return world(tmp_path_factory)


@pytest.fixture
def client(shared: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings(), shared.paths("segment-api"))) as test_client:
        yield test_client


@pytest.fixture
def signed_client(shared: World) -> Iterator[TestClient]:
    app = create_app(settings(segment_shared_secret=SECRET), shared.paths("segment-signed"))
    with TestClient(app) as test_client:
        yield test_client


def _call(event_name: str, visitor: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event_name,
        "anonymousId": visitor,
        "timestamp": "2024-02-09T10:00:00Z",
        "properties": {"product_id": "sku-1", "price": 19.9},
        **fields,
    }


def _post(client: TestClient, body: Any, **headers: str) -> Any:
    raw = orjson.dumps(body)
    all_headers = {**KEY, "content-type": "application/json", **headers}
    return client.post("/v1/events", content=raw, headers=all_headers)


def test_a_track_call_rescores_and_stores_its_visitor(client: TestClient) -> None:
    answer = _post(client, _call("Product Added", "seg-anon-1"))
    assert answer.status_code == 200, answer.text
    parsed = SegmentEventsResponse.model_validate(answer.json())
    assert (parsed.accepted, parsed.rejected, parsed.ignored) == (1, [], {})
    (score,) = parsed.scores
    assert score.visitor_id == "seg-anon-1" and score.source == "real_time"
    stored = client.get("/v1/visitors/seg-anon-1").json()
    assert stored["scored_at"] == answer.json()["scores"][0]["scored_at"]


def test_a_batch_maps_products_resolves_identity_and_counts_the_rest(client: TestClient) -> None:
    order = _call(
        "Order Completed",
        "seg-phone",
        userId="seg-user",
        properties={
            "order_id": "o-1",
            "revenue": 30.0,
            "products": [{"product_id": "a", "price": 10}, {"product_id": "b", "price": 20}],
        },
    )
    batch = {
        "batch": [
            order,
            {"type": "identify", "anonymousId": "seg-laptop", "userId": "seg-user", "sentAt": "x"},
            _call("Product Viewed", "seg-laptop", timestamp="2024-02-09T11:00:00Z"),
            _call("Cart Viewed", "seg-other"),
            _call("Product Viewed", "seg-other", timestamp="yesterday"),
            {"type": "page", "anonymousId": "seg-pages", "timestamp": "2024-02-09T09:00:00Z"},
        ],
        "sentAt": "2024-02-09T12:00:00Z",
    }
    answer = _post(client, batch)
    assert answer.status_code == 200, answer.text
    parsed = SegmentEventsResponse.model_validate(answer.json())
    assert parsed.accepted == 4  # two order rows, the laptop's view (the phone's), a page
    assert [(r.index, r.reason) for r in parsed.rejected] == [(4, "bad_timestamp")]
    assert parsed.ignored == {"identify": 1, "Cart Viewed": 1}
    assert sorted(s.visitor_id for s in parsed.scores) == ["seg-pages", "seg-phone"]
    assert client.get("/v1/visitors/seg-laptop").status_code == 404  # it is seg-phone


def test_calls_with_nothing_to_score_are_answered_not_failed(client: TestClient) -> None:
    identify = {"type": "identify", "userId": "u", "timestamp": "2024-02-09T10:00:00Z"}
    answer = _post(client, {**identify, "traits": {"plan": "x"}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "accepted": 0,
        "rejected": [],
        "ignored": {"identify": 1},
        "scores": [],
    }


def test_calls_whose_every_event_is_rejected_are_422(client: TestClient) -> None:
    answer = _post(client, _call("Product Viewed", "seg-x", timestamp="nonsense"))
    assert answer.status_code == 422
    assert answer.json()["title"] == "No valid events"
    assert answer.json()["errors"][0]["reason"] == "bad_timestamp"
    # The spec requires a visitor and a time: the schema says so, and so does the 422.
    no_visitor = _post(client, {"type": "page", "timestamp": "2024-02-09T10:00:00Z"})
    assert no_visitor.status_code == 422
    assert "anonymousId or a userId" in no_visitor.text
    assert _post(client, {"type": "page", "anonymousId": "a"}).status_code == 422


def test_segment_bodies_need_the_write_key_and_a_valid_shape(client: TestClient) -> None:
    raw = orjson.dumps(_call("Product Added", "seg-anon-1"))
    assert (
        client.post(
            "/v1/events", content=raw, headers={"content-type": "application/json"}
        ).status_code
        == 401
    )
    assert _post(client, {"type": 5}).status_code == 422
    assert _post(client, {"batch": []}).status_code == 422


def _signature(raw: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()


def test_with_a_shared_secret_segment_bodies_must_be_signed(signed_client: TestClient) -> None:
    raw = orjson.dumps(_call("Product Added", "seg-signed"))
    headers = {**KEY, "content-type": "application/json"}
    unsigned = signed_client.post("/v1/events", content=raw, headers=headers)
    assert unsigned.status_code == 401 and unsigned.json()["title"] == "Bad signature"
    wrong = {**headers, "X-Signature": _signature(raw, "guess")}
    assert signed_client.post("/v1/events", content=raw, headers=wrong).status_code == 401
    tampered = raw.replace(b"19.9", b"0.01")
    signed = {**headers, "X-Signature": _signature(raw)}
    assert signed_client.post("/v1/events", content=tampered, headers=signed).status_code == 401
    assert signed_client.post("/v1/events", content=raw, headers=signed).status_code == 200
    # The canonical body is the API's own, authenticated by its key: no signature asked.
    canonical = {"visitor_id": "seg-signed", "events": [event()]}
    answer = signed_client.post("/v1/events", json=canonical, headers=KEY)
    assert answer.status_code == 200, answer.text
    EventsResponse.model_validate(answer.json())


def test_the_schema_documents_both_bodies(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/events"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in body["oneOf"]] == [
        "EventsRequest",
        "SegmentCall",
        "SegmentBatch",
        "Ga4Body",
    ]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in answer["anyOf"]} == {
        "EventsResponse",
        "SegmentEventsResponse",
    }
