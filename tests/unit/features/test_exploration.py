"""Exploration summaries on a hand-made log whose answers are counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from features.events.schema import conform_events
from features.exploration import (
    event_funnel,
    purchase_timing,
    returning_visitors,
    visitor_activity,
)


def _events() -> pl.DataFrame:
    rows = [
        # a: browses on day 1, comes back on day 4 and buys (two rows, one order).
        ("a", datetime(2024, 3, 1, 10, tzinfo=UTC), "view_item", None),
        ("a", datetime(2024, 3, 4, 9, tzinfo=UTC), "add_to_cart", None),
        ("a", datetime(2024, 3, 4, 9, 5, tzinfo=UTC), "purchase", "t1"),
        ("a", datetime(2024, 3, 4, 9, 5, tzinfo=UTC), "purchase", "t1"),
        # b: buys on the first day seen.
        ("b", datetime(2024, 3, 2, 12, tzinfo=UTC), "page_view", None),
        ("b", datetime(2024, 3, 2, 12, 3, tzinfo=UTC), "purchase", "t2"),
        # c: one view, never back.
        ("c", datetime(2024, 3, 3, 8, tzinfo=UTC), "view_item", None),
    ]
    frame = pl.DataFrame(
        rows, schema=["visitor_id", "event_time", "event_name", "transaction_id"], orient="row"
    )
    return conform_events(frame)


def test_funnel_counts_events_and_visitors_in_funnel_order() -> None:
    funnel = event_funnel(_events())
    assert funnel["event_name"].cast(pl.String).to_list() == [
        "page_view", "view_item", "add_to_cart", "purchase",
    ]  # fmt: skip
    purchase = funnel.filter(pl.col("event_name") == "purchase").row(0, named=True)
    assert (purchase["events"], purchase["visitors"]) == (3, 2)
    assert purchase["visitor_share"] == 2 / 3


def test_activity_and_returning_visitors() -> None:
    activity = visitor_activity(_events())
    assert activity.select("visitor_id", "events", "active_days", "orders").rows() == [
        ("a", 4, 2, 1), ("b", 2, 1, 1), ("c", 1, 1, 0),
    ]  # fmt: skip
    returning = returning_visitors(activity)
    assert returning.rows(named=True) == [
        {"active_days": 1, "visitors": 2, "buyer_share": 0.5, "visitor_share": 2 / 3},
        {"active_days": 2, "visitors": 1, "buyer_share": 1.0, "visitor_share": 1 / 3},
    ]


def test_purchase_timing_measures_days_since_the_previous_visit() -> None:
    timing = purchase_timing(_events())
    assert timing.select("visitor_id", "days_since_previous_visit").rows() == [
        ("a", 3), ("b", None),
    ]  # fmt: skip
    assert timing["gap"].cast(pl.String).to_list() == ["2-3 days", "first day seen"]
