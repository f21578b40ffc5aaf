"""Segment bodies for POST /v1/events: shape, events by visitor, signature."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from pydantic import SecretStr, TypeAdapter, ValidationError

from serving.api.problems import ProblemError
from serving.api.schemas import EventsRequest, Rejection
from serving.api.segment import (
    EventsBody,
    SegmentBatch,
    SegmentCall,
    at_calls,
    calls_of,
    check_signature,
    events_source,
    segment_events,
)

BODY = TypeAdapter(EventsBody)
CANONICAL = {
    "visitor_id": "v",
    "events": [{"event_time": "2024-01-01T00:00:00Z", "event_name": "x"}],
}


def _call(event: str | None = "Product Viewed", **fields: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "track", "timestamp": "2024-02-09T10:00:00Z", **fields}
    if event is not None:
        call["event"] = event
    return call


@pytest.mark.parametrize(
    ("body", "kind", "model"),
    [
        (CANONICAL, "canonical", EventsRequest),
        (_call(anonymousId="a"), "segment", SegmentCall),
        ({"type": "identify", "batch": None, "userId": "u", "sentAt": "t"}, "segment", SegmentCall),
        ({"batch": [_call(anonymousId="a")], "sentAt": "x"}, "segment_batch", SegmentBatch),
        # Not canonical (an extra key): a page call, with its extra fields.
        ({**CANONICAL, **_call(userId="u"), "type": "page"}, "segment", SegmentCall),
        ([1, 2], "canonical", None),
    ],
)
def test_the_body_shape_picks_its_model(body: Any, kind: str, model: type | None) -> None:
    assert events_source(body) == kind
    if model is None:
        with pytest.raises(ValidationError):
            BODY.validate_python(body)
    else:
        assert isinstance(BODY.validate_python(body), model)


@pytest.mark.parametrize(
    "body",
    [
        {"batch": []},
        {"batch": 5, "type": "track"},
        {"type": 5},
        {"type": "track", "properties": [1]},
        {"type": "page", "timestamp": "2024-02-09T10:00:00Z"},  # no visitor
        {"type": "page", "anonymousId": " ", "timestamp": "2024-02-09T10:00:00Z"},
        {"type": "page", "anonymousId": "a"},  # no time
        {"type": "page", "anonymousId": "a", "timestamp": None},
        {"batch": [{"type": "page", "anonymousId": "a"}]},
    ],
)
def test_bodies_that_fit_no_shape_are_refused(body: Any) -> None:
    with pytest.raises(ValidationError):
        BODY.validate_python(body)


def test_a_batch_with_a_type_fits_the_batch_only() -> None:
    body = {"type": "track", "batch": [_call(anonymousId="a")]}
    assert isinstance(BODY.validate_python(body), SegmentBatch)
    with pytest.raises(ValidationError):
        SegmentCall.model_validate(body)  # the schema's oneOf: never both


def test_calls_keep_their_spec_names_and_extra_fields() -> None:
    body = SegmentCall.model_validate(
        _call(anonymousId="a", userId="u", context={"sessionId": 7}, messageId="m")
    )
    (call,) = calls_of(body)
    assert call["anonymousId"] == "a" and call["userId"] == "u" and call["messageId"] == "m"
    assert "batch" not in call


def test_events_by_visitor_with_identity_resolved_in_the_body() -> None:
    calls = [
        _call(
            "Order Completed",
            anonymousId="phone",
            userId="u1",
            properties={
                "order_id": "o1",
                "revenue": 9.0,
                "products": [{"product_id": "a", "price": 2}, {"product_id": "b", "price": 1}],
            },
        ),
        _call(anonymousId="laptop", userId="u1", timestamp="2024-02-09T11:00:00Z"),
        {"type": "identify", "anonymousId": "laptop", "userId": "u1"},
        _call("Cart Viewed", anonymousId="x"),
        _call(anonymousId="tablet", properties={"product_id": "c"}),
        _call(),  # no visitor
        _call(anonymousId="\x00bad"),
        _call(anonymousId="long", properties={"product_id": "x" * 1001}),
        {"type": "page", "userId": "u1", "timestamp": "2024-02-09T12:00:00Z"},
    ]
    mapped = segment_events(calls)
    assert sorted(mapped.by_visitor) == ["phone", "tablet"]
    phone = mapped.by_visitor["phone"]
    assert phone.calls == [0, 0, 1, 8]
    assert [e.event_name for e in phone.events] == [
        "purchase",
        "purchase",
        "view_item",
        "page_view",
    ]
    assert [e.revenue for e in phone.events[:2]] == ["6.0", "3.0"]
    assert {e.visitor_id for e in phone.events} == {None}  # the request's visitor
    assert mapped.ignored == {"identify": 1, "Cart Viewed": 1}
    assert [(r.index, r.reason) for r in mapped.rejected] == [
        (5, "missing_visitor"),
        (6, "bad_visitor_id"),
        (7, "value_too_long"),
    ]
    assert mapped.rejected[-1].detail == "item_id=1001 characters, at most 1000"
    assert mapped.events == 5


def test_rejections_point_at_the_calls() -> None:
    rejected = [Rejection(index=2, reason="bad_price"), Rejection(index=0, reason="bad_timestamp")]
    assert [(r.index, r.reason) for r in at_calls(rejected, [4, 4, 9])] == [
        (9, "bad_price"),
        (4, "bad_timestamp"),
    ]


def _signed(secret: str, raw: bytes) -> list[tuple[bytes, bytes]]:
    digest = hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
    return [(b"x-signature", digest.encode())]


def test_signature_is_checked_only_with_a_secret() -> None:
    raw = b'{"type":"page"}'
    check_signature(None, raw, [])
    secret = SecretStr("s3cret")
    check_signature(secret, raw, _signed("s3cret", raw))
    for headers in (
        [],
        _signed("other", raw),
        _signed("s3cret", raw + b" "),
        _signed("s3cret", raw) * 2,
    ):
        with pytest.raises(ProblemError) as refused:
            check_signature(secret, raw, headers)
        assert refused.value.problem.status == 401
