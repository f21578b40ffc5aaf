"""One visitor's history with every feature computed by hand (T = Friday 2024-03-01 00:00 UTC).

In the window [2024-01-31 00:00, 2024-03-01 00:00), sorted, 12 rows in 7 sessions:
  e14 Wed 01-31 00:00 page_view                       (exactly T-30d: inside)      session 1
  e1  Sat 02-10 10:00 page_view                                                    session 2
  e2  Sat 02-10 10:10 view_item A cat c1 10.0
  e3  Sat 02-10 10:20 add_to_cart A 10.0 x2           (A bought at 10:30: not abandoned)
  e4  Sat 02-10 10:25 begin_checkout A 10.0 x2        (not abandoned)
  e5  Sat 02-10 10:30 purchase A x2 revenue 20 t1 u1  (logged in)        session time 30 min
  e11 Thu 02-15 12:00 refund A revenue 5 t1                                        session 3
  e6  Sun 02-25 20:00 view_item B cat c2 30.0 sid s2                               session 4
  e7  Sun 02-25 20:05 view_item C cat c2 no price sid s3 (session id changes)      session 5
  e8  Sun 02-25 20:06 add_to_cart B 30.0 sid s3       (abandoned, value 30)  session time 1 min
  e9  Thu 02-29 23:00 add_to_wishlist C                (65 min after e8)           session 6
  e10 Thu 02-29 23:40 remove_from_cart B               (40 min > 30: new session)  session 7
Outside: e12 purchase at exactly T, e13 view_item on 01-15 (before the lookback).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from features.batch import build_features, collect
from features.definitions import FEATURE_COLUMNS
from features.online import OnlineFeatureEvaluator
from features.testing import to_frame

T = datetime(2024, 3, 1, tzinfo=UTC)
MIN = 1 / 1440  # one minute in days


def _event(when: str, name: str, **fields: Any) -> dict[str, Any]:
    moment = datetime.fromisoformat(when).replace(tzinfo=UTC)
    return {"visitor_id": "v1", "event_time": moment, "event_name": name, **fields}


HISTORY = [
    _event("2024-01-31T00:00", "page_view"),
    _event("2024-02-10T10:00", "page_view"),
    _event("2024-02-10T10:10", "view_item", item_id="A", item_category="c1", price=10.0),
    _event("2024-02-10T10:20", "add_to_cart", item_id="A", price=10.0, quantity=2),
    _event("2024-02-10T10:25", "begin_checkout", item_id="A", price=10.0, quantity=2),
    _event(
        "2024-02-10T10:30",
        "purchase",
        item_id="A",
        price=10.0,
        quantity=2,
        revenue=20.0,
        transaction_id="t1",
        user_id="u1",
    ),
    _event("2024-02-15T12:00", "refund", item_id="A", revenue=5.0, transaction_id="t1"),
    _event(
        "2024-02-25T20:00",
        "view_item",
        item_id="B",
        item_category="c2",
        price=30.0,
        session_id="s2",
    ),
    _event("2024-02-25T20:05", "view_item", item_id="C", item_category="c2", session_id="s3"),
    _event("2024-02-25T20:06", "add_to_cart", item_id="B", price=30.0, session_id="s3"),
    _event("2024-02-29T23:00", "add_to_wishlist", item_id="C"),
    _event("2024-02-29T23:40", "remove_from_cart", item_id="B"),
    _event("2024-03-01T00:00", "purchase", item_id="B", revenue=30.0, transaction_id="t9"),
    _event("2024-01-15T09:00", "view_item", item_id="Z", price=99.0),
]

ZERO_BUCKETS = {
    f"n_{e}_{b}": 0
    for e in (
        "page_view",
        "view_item",
        "add_to_cart",
        "remove_from_cart",
        "add_to_wishlist",
        "begin_checkout",
        "purchase",
    )
    for b in ("1d", "1_7d", "7_14d", "14_30d")
}
EXPECTED: dict[str, float] = {
    **ZERO_BUCKETS,
    "n_page_view_14_30d": 2,
    "n_view_item_1_7d": 2,
    "n_view_item_14_30d": 1,
    "n_add_to_cart_1_7d": 1,
    "n_add_to_cart_14_30d": 1,
    "n_remove_from_cart_1d": 1,
    "n_add_to_wishlist_1d": 1,
    "n_begin_checkout_14_30d": 1,
    "n_purchase_14_30d": 1,
    "days_since_last_page_view": 19 + 14 / 24,
    "days_since_last_view_item": 4 + 235 * MIN,
    "days_since_last_add_to_cart": 4 + 234 * MIN,
    "days_since_last_remove_from_cart": 20 * MIN,
    "days_since_last_add_to_wishlist": 1 / 24,
    "days_since_last_begin_checkout": 19 + 815 * MIN,
    "days_since_last_purchase": 19 + 810 * MIN,
    "n_events": 12,
    "days_since_last_event": 20 * MIN,
    "days_since_first_event": 30.0,
    "n_sessions": 7,
    "mean_events_per_session": 12 / 7,
    "mean_session_minutes": 31 / 7,
    "n_active_days": 5,
    "n_carts_abandoned": 1,
    "value_carts_abandoned": 30.0,
    "n_checkouts_abandoned": 0,
    "n_items_viewed": 3,
    "n_categories_viewed": 2,
    "n_items_carted": 2,
    "mean_price_viewed": 20.0,
    "max_price_viewed": 30.0,
    "share_events_1d": 2 / 12,
    "share_events_7d": 5 / 12,
    "n_orders": 1,
    "revenue": 20.0,
    "avg_order_value": 20.0,
    "n_refunds": 1,
    "refund_amount": 5.0,
    "logged_in": 1,
    "share_events_night": 1 / 12,
    "share_events_morning": 5 / 12,
    "share_events_afternoon": 1 / 12,
    "share_events_evening": 5 / 12,
    "share_events_weekend": 8 / 12,
}


def test_golden_covers_every_feature() -> None:
    assert set(EXPECTED) == set(FEATURE_COLUMNS)


def test_batch_features_match_hand_computed_values() -> None:
    features = collect(build_features(to_frame(HISTORY), T, engine="polars"))
    assert features["visitor_id"].to_list() == ["v1"]
    row = features.row(0, named=True)
    assert row["as_of"] == T
    for name in FEATURE_COLUMNS:
        assert row[name] == pytest.approx(EXPECTED[name], rel=1e-12), name


def test_online_features_match_hand_computed_values() -> None:
    online = OnlineFeatureEvaluator().features(HISTORY, T)
    for name in FEATURE_COLUMNS:
        assert online[name] == pytest.approx(EXPECTED[name], rel=1e-12, nan_ok=True), name


def test_visitor_without_purchases_has_null_purchase_recency() -> None:
    history = [e for e in HISTORY if e["event_name"] not in ("purchase", "refund")]
    row = collect(build_features(to_frame(history), T)).row(0, named=True)
    assert row["days_since_last_purchase"] is None
    assert row["avg_order_value"] is None
    assert row["n_orders"] == 0
    assert math.isnan(OnlineFeatureEvaluator().features(history, T)["days_since_last_purchase"])
