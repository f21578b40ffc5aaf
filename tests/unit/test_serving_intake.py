"""Posted events go through ingestion's validation; batching requests changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from features.ingest.mapping import builtin_mapping
from features.ingest.validate import ValidationLimits
from serving.intake import EventIntake, _Pending, check_events
from serving.schemas import EventIn

LIMITS = ValidationLimits(datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
MAPPING = builtin_mapping("canonical")

events = st.builds(
    EventIn,
    event_time=st.sampled_from(
        [
            "2024-01-01T10:00:00Z",
            "2024-01-02 11:00:00+02:00",
            "soon",
            "1999-01-01T00:00:00Z",
            None,
            1_704_000_000,
        ]
    ),
    event_name=st.sampled_from(["view_item", "purchase", "add_to_cart", "dance", None]),
    price=st.sampled_from([None, 12.5, "3", "-1", "cheap"]),
    quantity=st.sampled_from([None, 1, "2", 1.5]),
    visitor_id=st.sampled_from([None, None, "other"]),
)
requests = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.lists(events, min_size=1, max_size=4)),
    min_size=1,
    max_size=5,
)


def _plain(result: tuple[pl.DataFrame, list[Any]]) -> tuple[list[Any], list[Any]]:
    accepted, rejected = result
    return accepted.rows(), [(r.index, r.reason, r.detail) for r in rejected]


@settings(max_examples=40, deadline=None)
@given(batch=requests)
def test_batched_equals_one_by_one(batch: list[tuple[str, list[EventIn]]]) -> None:
    together = check_events([_Pending(v, e) for v, e in batch], MAPPING, LIMITS)
    for (visitor, posted), result in zip(batch, together, strict=True):
        alone = check_events([_Pending(visitor, posted)], MAPPING, LIMITS)[0]
        assert _plain(result) == _plain(alone)
        accepted, rejected = result
        assert accepted.height + len(rejected) == len(posted)
        assert (accepted.get_column("visitor_id") == visitor).all()


def test_reasons_are_ingestions() -> None:
    accepted, rejected = check_events(
        [
            _Pending(
                "a",
                [
                    EventIn(
                        event_time="2024-01-01T10:00:00Z", event_name="view_item", price="12.5"
                    ),
                    EventIn(event_time="garbage", event_name="view_item"),
                    EventIn(event_time="2024-01-01T10:00:00Z", event_name="dance"),
                    EventIn(
                        event_time="2024-01-01T10:00:00Z", event_name="view_item", visitor_id="b"
                    ),
                ],
            )
        ],
        MAPPING,
        LIMITS,
    )[0]
    assert accepted.height == 1 and accepted["price"][0] == 12.5
    assert [(r.index, r.reason) for r in rejected] == [
        (1, "bad_timestamp"),
        (2, "unknown_event_name"),
        (3, "visitor_mismatch"),
    ]


def test_the_intake_thread_answers_each_request() -> None:
    intake = EventIntake(lambda: LIMITS)
    intake.start()
    try:
        accepted, rejected = intake.check(
            "a", [EventIn(event_time="2024-01-01T10:00:00Z", event_name="purchase")]
        )
        assert accepted.height == 1 and not rejected
    finally:
        intake.stop()
