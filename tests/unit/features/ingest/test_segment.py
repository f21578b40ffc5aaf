"""Segment / RudderStack e-commerce spec v2 calls mapped to canonical records."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from features.events.schema import EventName
from features.ingest.segment import (
    SEGMENT_TO_GA4,
    IdentityMap,
    call_records,
    identity_link,
    map_calls,
    split_revenue,
    unbatched,
)


def _track(event: str, properties: dict[str, Any], **ids: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "anonymousId": "anon-1",
        "timestamp": "2024-03-05T08:00:00.000Z",
        "properties": properties,
        **ids,
    }


ORDER = _track(
    "Order Completed",
    {
        "order_id": "O-1",
        "revenue": 25.0,
        "total": 30.0,  # with shipping and tax: not what GA4 counts as purchase revenue
        "products": [
            {"product_id": "P1", "category": "Games", "price": 10.0, "quantity": 2},
            {"sku": "SKU-2", "price": 7.5},  # no quantity: one
            {"product_id": "P3", "price": 2.5, "quantity": 1},
        ],
    },
)


def test_every_spec_event_maps_to_a_canonical_name() -> None:
    assert set(SEGMENT_TO_GA4.values()) == set(EventName) - {EventName.PAGE_VIEW}
    for name, canonical in SEGMENT_TO_GA4.items():
        records, ignored = call_records(_track(name, {"product_id": "P1"}), "v")
        assert ignored is None
        assert {r["event_name"] for r in records} == {canonical.value}


def test_a_multi_product_order_is_one_row_per_product_summing_to_its_revenue() -> None:
    records, ignored = call_records(ORDER, "v")
    assert ignored is None
    assert [r["item_id"] for r in records] == ["P1", "SKU-2", "P3"]
    assert {r["event_name"] for r in records} == {"purchase"}
    assert {r["transaction_id"] for r in records} == {"O-1"}
    revenues = [float(r["revenue"] or "nan") for r in records]
    assert sum(revenues) == pytest.approx(25.0, abs=1e-12)
    # Split in proportion to price x quantity: 20, 7.5 and 2.5 of 30.
    assert revenues == pytest.approx([25.0 * 20 / 30, 25.0 * 7.5 / 30, 25.0 * 2.5 / 30])
    assert [r["quantity"] for r in records] == ["2", None, "1"]
    assert records[0]["item_category"] == "Games"


@pytest.mark.parametrize(
    ("amounts", "products", "expected"),
    [
        ({"total": 12.0}, [{"price": 1.0}, {"price": 3.0}], [3.0, 9.0]),  # total when no revenue
        ({"value": 10.0}, [{"product_id": "a"}, {"product_id": "b"}], [5.0, 5.0]),  # even split
        ({}, [{"price": 2.0, "quantity": 3}, {"price": 1.5}], [6.0, 1.5]),  # price x quantity
    ],
)
def test_order_amount_fallbacks(
    amounts: dict[str, float], products: list[dict[str, Any]], expected: list[float]
) -> None:
    records, _ = call_records(_track("Order Completed", {**amounts, "products": products}), "v")
    assert [float(r["revenue"] or "nan") for r in records] == pytest.approx(expected)


def test_shares_add_up_exactly_to_awkward_totals() -> None:
    products: list[dict[str, Any]] = [{"price": 1.0}, {"price": 1.0}, {"price": 1.0}]
    for total in (0.1, 100.0, 33.33, 1e9 + 0.07):
        shares = [float(s or "nan") for s in split_revenue(total, products)]
        assert sum(shares[:-1]) + shares[-1] == total


def test_an_amount_that_is_not_a_number_is_passed_on_for_validation() -> None:
    assert split_revenue("12,50", [{"price": 1}, {"price": 2}]) == ["12,50", "12,50"]


def test_single_product_calls_carry_the_product_in_properties() -> None:
    call = _track("Product Added", {"product_id": "P9", "price": 4.5, "quantity": 3})
    records, _ = call_records(call, "v")
    assert len(records) == 1
    assert (records[0]["item_id"], records[0]["price"], records[0]["quantity"]) == (
        "P9",
        "4.5",
        "3",
    )
    assert records[0]["revenue"] is None  # revenue only on orders: it stays additive


def test_a_page_call_is_a_page_view_without_item() -> None:
    page = {
        "type": "page",
        "anonymousId": "a",
        "timestamp": "2024-03-05T08:00:00Z",
        "context": {"sessionId": 1709625600},
        "properties": {"path": "/shoes", "price": 3},
    }
    records, ignored = call_records(page, "a")
    assert ignored is None
    assert records == [
        {
            "visitor_id": "a",
            "user_id": None,
            "event_time": "2024-03-05T08:00:00Z",
            "event_name": "page_view",
            "session_id": "1709625600",
            "transaction_id": None,
            "revenue": None,
        }
    ]


@pytest.mark.parametrize(
    ("call", "counted_as"),
    [
        ({"type": "identify", "userId": "u", "traits": {"email": "x@example.com"}}, "identify"),
        ({"type": "screen", "anonymousId": "a"}, "screen"),
        (_track("Cart Viewed", {}), "Cart Viewed"),
        (_track("Product List Viewed", {"products": [{"product_id": "a"}]}), "Product List Viewed"),
        ({"type": "track", "anonymousId": "a"}, "(no event name)"),
    ],
)
def test_calls_outside_the_table_are_ignored_by_name(call: dict[str, Any], counted_as: str) -> None:
    assert call_records(call, "a") == ([], counted_as)


def test_map_calls_counts_ignored_calls_by_name() -> None:
    calls = [ORDER, {"type": "identify", "anonymousId": "anon-1", "userId": "u-1"}]
    calls += [_track("Cart Viewed", {})] * 2
    records, ignored, _ = map_calls(calls)
    assert len(records) == 3
    assert ignored == {"identify": 1, "Cart Viewed": 2}


def test_warehouse_snake_case_keys_are_read() -> None:
    call = {
        "type": "track",
        "event": "Product Viewed",
        "anonymous_id": " a1 ",
        "user_id": "u1",
        "original_timestamp": "2024-03-05T08:00:00Z",
        "properties": {"product_id": "P1"},
    }
    records, _ = call_records(call, "a1")
    assert records[0]["user_id"] == "u1"
    assert records[0]["event_time"] == "2024-03-05T08:00:00Z"
    assert identity_link(call) == ("2024-03-05T08:00:00Z", "a1", "u1")  # trimmed as ingest trims


def _link(time: str, anonymous: str, user: str) -> tuple[str, str, str]:
    return (f"2024-03-05T{time}Z", anonymous, user)


def test_a_user_seen_with_two_anonymous_ids_is_one_visitor() -> None:
    links = [_link("09:00:00", "anon-late", "u-1"), _link("08:00:00", "anon-early", "u-1")]
    for ordering in itertools.permutations(links):
        identities = IdentityMap.from_links(ordering)
        # The earliest anonymous id seen with the user is its visitor, whatever the file order.
        assert identities.visitor("anon-late", None) == "anon-early"
        assert identities.visitor("anon-early", None) == "anon-early"
        assert identities.visitor(None, "u-1") == "anon-early"  # a server-side call
        assert identities.visitor("anon-late", "u-1") == "anon-early"
        assert identities.visitor("anon-other", None) == "anon-other"
        assert identities.visitor(None, "u-unlinked") == "u-unlinked"


def test_ties_in_time_are_broken_by_the_ids_not_the_file_order() -> None:
    links = [_link("08:00:00", "anon-b", "u-1"), _link("08:00:00", "anon-a", "u-1")]
    for ordering in itertools.permutations(links):
        assert IdentityMap.from_links(ordering).visitor(None, "u-1") == "anon-a"


def test_an_unreadable_time_never_wins_the_identity() -> None:
    links = [("yesterday", "anon-x", "u-1"), _link("23:00:00", "anon-y", "u-1")]
    assert IdentityMap.from_links(links).visitor(None, "u-1") == "anon-y"


def test_map_calls_resolves_identity_across_the_calls() -> None:
    later = {**_track("Product Viewed", {"product_id": "P1"}), "anonymousId": "anon-2"}
    later["timestamp"] = "2024-03-06T08:00:00Z"
    login = {**later, "type": "identify", "userId": "u-1"}
    first = {**ORDER, "userId": "u-1"}
    records, _, _ = map_calls([later, login, first])
    assert {r["visitor_id"] for r in records} == {"anon-1"}
    assert records[0]["user_id"] is None  # the call's own userId, not the resolved one


def test_a_batch_body_is_its_calls() -> None:
    assert unbatched({"batch": [{"type": "page"}, ORDER]}) == [{"type": "page"}, ORDER]
    assert unbatched(ORDER) == [ORDER]
