"""Segment / RudderStack e-commerce spec v2 calls as canonical source records.

One table, ``SEGMENT_TO_GA4``, maps the spec's event names to GA4's recommended event
names, which are the canonical ones (``features.events.schema``): the GA4 export, GA4
Measurement Protocol bodies and Segment calls all land on the same names. Page calls
(``type: "page"``) are ``page_view``. Anything else (another track event name, identify,
screen, group, alias calls) is ignored and counted by name, never an error.

Grain of the records: one per (call, product), as the canonical events. A call with a
``products`` array gives a row per product; a single-product call (``Product Viewed``,
``Product Added``, ...) carries its product in ``properties``; a call without products
is one row with no item.

Money: revenue is set only on ``purchase`` and ``refund`` rows, and is additive: the
rows of one order sum to the order's revenue. The order's revenue is ``properties.revenue``,
else ``total``, else ``value``; it is split over the products in proportion to their
``price x quantity`` (a missing quantity counts as 1), or evenly when those are unknown
or zero. Without an order-level amount each product row carries its ``price x quantity``.
A value that is not a number is passed on as written, for validation to quarantine it
with its reason (``bad_revenue``, ``bad_price``...).

Identity (``IdentityMap``): ``anonymousId`` is the visitor, ``userId`` the ``user_id``. A
``userId`` seen with several anonymous ids is one visitor: the anonymous id of its
earliest call that carries both (by ``timestamp``; at equal times the smallest anonymous
id, so that the order of the lines never matters). Every
call of that user, and every call of any anonymous id linked to that user (its first
linked ``userId``), gets that visitor; a ``userId`` never seen with an anonymous id is its
own visitor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from features.events.schema import EventName

#: Segment / RudderStack e-commerce spec v2 track event -> GA4 (= canonical) event name.
SEGMENT_TO_GA4: dict[str, EventName] = {
    "Product Viewed": EventName.VIEW_ITEM,
    "Product Added": EventName.ADD_TO_CART,
    "Product Removed": EventName.REMOVE_FROM_CART,
    "Product Added to Wishlist": EventName.ADD_TO_WISHLIST,
    "Checkout Started": EventName.BEGIN_CHECKOUT,
    "Order Completed": EventName.PURCHASE,
    "Order Refunded": EventName.REFUND,
}
#: Call type (not a track event name) -> canonical event name.
SEGMENT_CALL_TYPES: dict[str, EventName] = {"page": EventName.PAGE_VIEW}
#: Columns of the records (canonical field names; ``segment.toml`` maps them one to one).
SEGMENT_COLUMNS: tuple[str, ...] = (
    "visitor_id", "user_id", "event_time", "event_name", "session_id", "item_id",
    "item_category", "price", "quantity", "revenue", "transaction_id",
)  # fmt: skip
#: Where the spec puts a call's time, best first (``timestamp`` is Segment's corrected time).
_TIME_KEYS = ("timestamp", "originalTimestamp", "original_timestamp", "receivedAt", "sentAt")
_ORDER_AMOUNT_KEYS = ("revenue", "total", "value")
_ORDERS = (EventName.PURCHASE, EventName.REFUND)
Record = dict[str, str | None]
Call = Mapping[str, Any]


def _get(call: Call, *keys: str) -> Any:
    """The first of ``keys`` present with a value: the API's camelCase or a warehouse's
    snake_case column."""
    for key in keys:
        value = call.get(key)
        if value is not None:
            return value
    return None


def as_identifier(value: Any) -> str | None:
    """An id as ingestion reads it (trimmed; blank is none), so the identity rule and the
    lake agree on which ids are the same."""
    text = as_text(value)
    text = text.strip() if text is not None else None
    return text or None


def anonymous_id(call: Call) -> str | None:
    return as_identifier(_get(call, "anonymousId", "anonymous_id"))


def user_id(call: Call) -> str | None:
    return as_identifier(_get(call, "userId", "user_id"))


def call_time(call: Call) -> str | None:
    return as_text(_get(call, *_TIME_KEYS))


def event_name(call: Call) -> tuple[EventName | None, str]:
    """(canonical name or None, the name it is counted under when ignored)."""
    call_type = as_text(call.get("type"))
    if call_type is not None and call_type != "track":
        return SEGMENT_CALL_TYPES.get(call_type), call_type
    name = as_text(call.get("event")) or "(no event name)"
    return SEGMENT_TO_GA4.get(name), name


def as_text(value: Any) -> str | None:
    """Scalars as text, as written; containers as their JSON-like repr (for validation to
    reject where a number was due)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _products(name: EventName, properties: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    products = properties.get("products")
    if isinstance(products, list) and products:
        return [p if isinstance(p, Mapping) else {"product_id": p} for p in products]
    if name in _ORDERS or name in (EventName.BEGIN_CHECKOUT, EventName.PAGE_VIEW):
        return []
    return [properties]  # a single-product call: the product is the properties


def _line_total(product: Mapping[str, Any]) -> float | None:
    price = _number(product.get("price"))
    quantity = _number(product.get("quantity")) if product.get("quantity") is not None else 1.0
    return None if price is None or quantity is None else price * quantity


def split_revenue(amount: Any, products: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Per product, its share of the order's ``amount`` (see the module's Money rule); the
    shares sum to ``amount``. ``amount`` None: each product's own ``price x quantity``."""
    lines = [_line_total(p) for p in products]
    if amount is None:
        return [None if line is None else repr(line) for line in lines]
    total = _number(amount)
    if total is None:
        return [as_text(amount)] * len(products)  # as written: validation says bad_revenue
    known = [line for line in lines if line is not None]
    base = sum(known)
    if len(known) == len(lines) and base > 0:
        weights = [line / base for line in known]
    else:
        weights = [1 / len(products)] * len(products)
    shares = [total * weight for weight in weights[:-1]]
    shares.append(total - sum(shares))  # the remainder: the shares add up to the total
    return [repr(share) for share in shares]


def call_records(call: Call, visitor: str | None) -> tuple[list[Record], str | None]:
    """(records of one call for ``visitor``, None) or ([], the name it is ignored under)."""
    name, counted_as = event_name(call)
    if name is None:
        return [], counted_as
    properties = call.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    context = call.get("context")
    context = context if isinstance(context, Mapping) else {}
    base: Record = {
        "visitor_id": visitor,
        "user_id": user_id(call),
        "event_time": call_time(call),
        "event_name": name.value,
        "session_id": as_text(_get(context, "sessionId", "session_id")),
        "transaction_id": as_text(properties.get("order_id")),
    }
    products = _products(name, properties)
    amount = _get(properties, *_ORDER_AMOUNT_KEYS) if name in _ORDERS else None
    if not products:
        return [{**base, "revenue": as_text(amount)}], None
    revenues = split_revenue(amount, products) if name in _ORDERS else [None] * len(products)
    records = [
        {
            **base,
            "item_id": as_text(_get(product, "product_id", "sku", "id")),
            "item_category": as_text(product.get("category")),
            "price": as_text(product.get("price")),
            "quantity": as_text(product.get("quantity")),
            "revenue": revenue,
        }
        for product, revenue in zip(products, revenues, strict=True)
    ]
    return records, None


def _sort_time(text: str | None) -> datetime:
    """An ISO 8601 time for ordering; unreadable or missing times sort last."""
    if text is not None:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return datetime.max.replace(tzinfo=UTC)


@dataclass
class IdentityMap:
    """The documented identity rule (module docstring), built from every call first."""

    visitor_of_user: dict[str, str] = field(default_factory=dict)
    user_of_anonymous: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_links(cls, links: Iterable[tuple[str | None, str, str]]) -> IdentityMap:
        """From (time, anonymousId, userId) of the calls that carry both, in any order."""
        identities = cls()
        ordered = sorted(links, key=lambda link: (_sort_time(link[0]), link[1], link[2]))
        for _, anonymous, user in ordered:
            identities.visitor_of_user.setdefault(user, anonymous)
            identities.user_of_anonymous.setdefault(anonymous, user)
        return identities

    def visitor(self, anonymous: str | None, user: str | None) -> str | None:
        known_user = user if user is not None else self.user_of_anonymous.get(anonymous or "")
        if known_user is not None and known_user in self.visitor_of_user:
            return self.visitor_of_user[known_user]
        return anonymous if anonymous is not None else user


def identity_link(call: Call) -> tuple[str | None, str, str] | None:
    """(time, anonymousId, userId) when the call carries both ids; else None."""
    anonymous, user = anonymous_id(call), user_id(call)
    if anonymous is None or user is None:
        return None
    return call_time(call), anonymous, user


def unbatched(body: Any) -> list[Any]:
    """The calls of a body: a ``batch`` call's ``batch`` list, else the body itself."""
    if isinstance(body, Mapping) and isinstance(body.get("batch"), list):
        return list(body["batch"])
    return [body]


def map_calls(calls: Sequence[Call]) -> tuple[list[Record], dict[str, int], IdentityMap]:
    """Records of ``calls`` with identities resolved among them, and the ignored counts."""
    identities = IdentityMap.from_links(
        link for call in calls if (link := identity_link(call)) is not None
    )
    records: list[Record] = []
    ignored: dict[str, int] = {}
    for call in calls:
        visitor = identities.visitor(anonymous_id(call), user_id(call))
        rows, ignored_as = call_records(call, visitor)
        records.extend(rows)
        if ignored_as is not None:
            ignored[ignored_as] = ignored.get(ignored_as, 0) + 1
    return records, ignored, identities
