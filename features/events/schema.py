"""The canonical event and contactability tables: the one place that names their columns.

Grain of ``events``: one row per (event, item). An event without items is one row with a
null ``item_id``. ``revenue`` is additive over rows: the revenue of an order is the sum of
``revenue`` over the rows that share its ``transaction_id``. A ``refund`` row carries the
refunded amount as a positive ``revenue`` and a positive ``quantity``.

``event_time`` is a UTC timestamp with microsecond precision. Event names follow GA4's
recommended e-commerce events so that users recognise them.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl


class EventName(StrEnum):
    PAGE_VIEW = "page_view"
    VIEW_ITEM = "view_item"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    ADD_TO_WISHLIST = "add_to_wishlist"
    BEGIN_CHECKOUT = "begin_checkout"
    PURCHASE = "purchase"
    REFUND = "refund"


class EmailStatus(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    PENDING = "pending"
    UNKNOWN = "unknown"


class AdsConsent(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    UNKNOWN = "unknown"


EVENT_NAMES: tuple[str, ...] = tuple(e.value for e in EventName)

TIME_DTYPE = pl.Datetime("us", "UTC")

#: Column name -> dtype of the canonical event table, in storage order.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "visitor_id": pl.String(),
    "event_time": TIME_DTYPE,
    "event_name": pl.String(),
    "item_id": pl.String(),
    "item_category": pl.String(),
    "price": pl.Float64(),
    "quantity": pl.Int64(),
    "revenue": pl.Float64(),
    "transaction_id": pl.String(),
    "session_id": pl.String(),
    "user_id": pl.String(),
    "source": pl.String(),
}
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA)
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = ("visitor_id", "event_time", "event_name")

#: Hive partition column of the event lake, derived from ``event_time`` (UTC date).
PARTITION_COLUMN = "event_date"

#: Column name -> dtype of the contactability table (one row per visitor, latest wins).
#: Routing reads it; it must never be joined into model features.
CONTACT_SCHEMA: dict[str, pl.DataType] = {
    "visitor_id": pl.String(),
    "email_status": pl.String(),
    "ads_consent": pl.String(),
    "updated_at": TIME_DTYPE,
}
CONTACT_COLUMNS: tuple[str, ...] = tuple(CONTACT_SCHEMA)
EMAIL_STATUSES: tuple[str, ...] = tuple(e.value for e in EmailStatus)
ADS_CONSENTS: tuple[str, ...] = tuple(e.value for e in AdsConsent)


def empty_events() -> pl.DataFrame:
    """An events frame with no rows and the canonical schema."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def conform_events(events: pl.DataFrame) -> pl.DataFrame:
    """Select the canonical columns in order, casting to canonical dtypes.

    Missing optional columns are added as nulls; a missing required column is an error.
    """
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events lack required columns {missing}; found {events.columns}")
    return events.select(
        (pl.col(name) if name in events.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in EVENT_SCHEMA.items()
    )
