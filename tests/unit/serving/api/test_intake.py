"""Posted events go through ingestion's validation; batching requests changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from features.ingest.mapping import builtin_mapping
from features.ingest.validate import ValidationLimits
from serving.api.intake import EventIntake, _Pending, check_events, plain_events
from serving.api.schemas import NOT_BLANK, EventIn
from serving.store.history import event_dicts

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
            1_704_000_000,
        ]
    ),
    event_name=st.sampled_from(["view_item", "purchase", "add_to_cart", "dance"]),
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


plain_times = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.isoformat())
times = st.one_of(
    plain_times,
    plain_times.map(lambda t: t.replace("+00:00", "Z")),
    plain_times.map(lambda t: t.replace("+00:00", "+05:30")),
    plain_times.map(lambda t: t.replace("+00:00", "")),
    plain_times.map(lambda t: t.replace("T", " ")),
    st.sampled_from(["2024-02-30T10:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T10:00:60Z"]),
    # Never blank: the request schema refuses a blank event_time before ingestion sees it.
    st.text(max_size=30).filter(lambda t: re.search(NOT_BLANK, t) is not None),
)
# Quantities beyond Int64 make ``validate_batch`` itself raise: kept below, ingestion's
# own concern.
numbers = st.one_of(
    st.none(),
    st.integers(-5, 2**60),
    st.floats(-1e15, 1e15),
    st.sampled_from([0.5, 2.0, -0.0, 2.0**53, 2**53, 1e19, 2**64, "3", " 4 "]),
)
texts = st.one_of(st.none(), st.text(max_size=8), st.sampled_from([" a", "b ", "", "\x00c"]))
any_events = st.builds(
    EventIn,
    event_time=times,
    event_name=st.one_of(st.sampled_from(["view_item", "purchase", " purchase", "dance"])),
    item_id=texts,
    item_category=texts,
    price=numbers,
    quantity=numbers,
    revenue=numbers,
    transaction_id=texts,
    session_id=texts,
    user_id=texts,
    visitor_id=st.sampled_from([None, None, "a", "b"]),
)


plain_looking = st.builds(
    EventIn,
    event_time=st.one_of(plain_times, plain_times.map(lambda t: t.replace("+00:00", "-03:00"))),
    event_name=st.sampled_from(["view_item", "purchase", "add_to_cart"]),
    item_id=st.one_of(st.none(), st.text(min_size=1, max_size=6)),
    price=st.one_of(st.none(), st.integers(0, 10**6), st.floats(0, 1e9)),
    quantity=st.one_of(st.none(), st.integers(0, 100), st.sampled_from([1.0, 2.5])),
    revenue=st.one_of(st.none(), st.floats(0, 1e9)),
)


@settings(max_examples=300, deadline=None)
@given(posted=st.lists(st.one_of(plain_looking, any_events), min_size=1, max_size=3))
def test_the_plain_path_accepts_only_what_ingestion_accepts_with_the_same_values(
    posted: list[EventIn],
) -> None:
    """``plain_events`` never decides alone what ingestion would not: whenever it accepts a
    request, ``validate_batch`` accepts every event with exactly the same values."""
    plain = plain_events("a", posted, LIMITS)
    accepted, rejected = check_events([_Pending("a", posted)], MAPPING, LIMITS)[0]
    if plain is not None:
        assert not rejected
        assert plain == event_dicts(accepted)


def test_the_plain_path_takes_ordinary_events() -> None:
    posted = [
        EventIn(
            event_time="2024-01-01T10:00:00.5+01:00",
            event_name="purchase",
            item_id="sku-1",
            price=19,
            quantity=2.0,
            revenue=38.0,
        )
    ]
    plain = plain_events("a", posted, LIMITS)
    assert plain is not None and plain == event_dicts(
        check_events([_Pending("a", posted)], MAPPING, LIMITS)[0][0]
    )
    assert plain_events("a", [EventIn(event_time="garbage", event_name="purchase")], LIMITS) is None


def test_accept_explains_rejections_through_ingestion() -> None:
    intake = EventIntake(lambda: LIMITS)
    accepted, rejected = intake.accept(
        "a",
        [
            EventIn(event_time="2024-01-01T10:00:00Z", event_name="purchase"),
            EventIn(event_time="2024-01-01T10:00:00Z", event_name="dance"),
        ],
    )
    assert len(accepted) == 1 and [r.reason for r in rejected] == ["unknown_event_name"]
