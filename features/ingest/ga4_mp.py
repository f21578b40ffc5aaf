"""GA4 Measurement Protocol bodies as canonical source records (``POST /v1/events``).

A body is ``{client_id | app_instance_id, user_id?, timestamp_micros?, events: [{name,
params}]}``, as Google documents it. GA4's recommended e-commerce event names are the
canonical ones (``features.events.schema``), so an event keeps its name; any other name
(``login``, ``session_start``, ...) is ignored and counted by name, never an error.

- **Visitor**: ``client_id`` (web streams), else ``app_instance_id`` (app streams);
  ``user_id`` is the ``user_id``.
- **Time**: the event's own ``timestamp_micros``, else the body's, else ``received_at``
  (the collection time, as GA4 does without one).
- **Items**: one record per entry of ``params.items`` (``item_id``, ``item_category``,
  ``price``, ``quantity``); an event without items is one record without an item.
- **Money**: on ``purchase`` and ``refund`` only, ``params.value`` split over the items in
  proportion to ``price x quantity``, with the same rule as Segment's orders
  (``features.ingest.segment.split_revenue``): the rows of one order sum to its value.
- ``params.transaction_id`` and ``params.session_id`` are kept as they are.

Values are passed on as written (text), for ingestion's validation to accept or refuse with
its reasons (``bad_price``, ``bad_event_time``...), as for a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from features.events.schema import EventName
from features.ingest.segment import Record, as_identifier, as_text, split_revenue

_ORDERS = (EventName.PURCHASE, EventName.REFUND)
_CANONICAL = {name.value: name for name in EventName}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def visitor_of(body: Mapping[str, Any]) -> str | None:
    """The body's visitor: ``client_id``, else ``app_instance_id`` (trimmed; blank: none)."""
    for key in ("client_id", "app_instance_id"):
        visitor = as_identifier(body.get(key))
        if visitor is not None:
            return visitor
    return None


def _time(micros: Any, received_at: datetime) -> str:
    """ISO 8601 of ``timestamp_micros`` (as written when it is not an integer, for
    validation to refuse), or of ``received_at``."""
    if micros is None:
        return received_at.astimezone(UTC).isoformat()
    try:
        whole = int(str(micros))
    except ValueError:
        return str(micros)
    return (_EPOCH + timedelta(microseconds=whole)).isoformat()


def event_records(
    body: Mapping[str, Any], received_at: datetime
) -> tuple[list[tuple[int, Record]], dict[str, int]]:
    """(``(event index, record)`` of every mapped event, ignored names with their counts)."""
    visitor, user = visitor_of(body), as_text(body.get("user_id"))
    events = body.get("events")
    records: list[tuple[int, Record]] = []
    ignored: dict[str, int] = {}
    for index, event in enumerate(events if isinstance(events, Sequence) else []):
        event = event if isinstance(event, Mapping) else {}
        raw_name = as_text(event.get("name")) or "(no event name)"
        name = _CANONICAL.get(raw_name)
        if name is None:
            ignored[raw_name] = ignored.get(raw_name, 0) + 1
            continue
        params = event.get("params")
        params = params if isinstance(params, Mapping) else {}
        moment = event.get("timestamp_micros", body.get("timestamp_micros"))
        base: Record = {
            "visitor_id": visitor,
            "user_id": user,
            "event_time": _time(moment, received_at),
            "event_name": name.value,
            "session_id": as_text(params.get("session_id")),
            "transaction_id": as_text(params.get("transaction_id")),
        }
        items = params.get("items")
        items = [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
        amount = params.get("value") if name in _ORDERS else None
        if not items:
            records.append((index, {**base, "revenue": as_text(amount)}))
            continue
        revenues = split_revenue(amount, items) if name in _ORDERS else [None] * len(items)
        for item, revenue in zip(items, revenues, strict=True):
            records.append(
                (
                    index,
                    {
                        **base,
                        "item_id": as_text(item.get("item_id")),
                        "item_category": as_text(item.get("item_category")),
                        "price": as_text(item.get("price")),
                        "quantity": as_text(item.get("quantity")),
                        "revenue": revenue,
                    },
                )
            )
    return records, ignored
