"""Posted events checked with ingestion's own rules (``features.ingest.validate``).

Two paths, one outcome:

- ``plain_events``: the common case, a request whose every event is plainly valid (ISO
  times with an offset inside the limits, a known event name, finite non-negative numbers,
  integral quantities, ids without surrounding blanks nor an email address). Checked in
  plain Python in microseconds; it only ever *accepts*, with exactly the canonical values
  ingestion would produce (``tests/unit/serving/api/test_intake.py`` holds it to
  ``validate_batch`` over random events).
- everything else goes to ``validate_batch``, which decides and explains each rejection.
  It costs milliseconds per call whatever the number of rows (it plans a Polars query), so
  ``EventIntake`` runs one validation for every request waiting at that moment in its own
  thread (a request never waits for a timer; under load one call serves many).

Accepted events come out as history events (``serving.store.history``): the canonical fields
without ``visitor_id`` and ``source``, ``event_time`` as Int64 microseconds since the
epoch. Events naming another visitor than the request's are rejected as
``visitor_mismatch``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from features.events.schema import EVENT_NAMES
from features.ingest.batch import LINE_COLUMN
from features.ingest.mapping import SourceMapping, builtin_mapping
from features.ingest.pii import EMAIL_IN_TEXT
from features.ingest.validate import MAX_ID_LENGTH, ValidationLimits, validate_batch
from features.rows import to_micros
from serving.api.batching import MicroBatcher
from serving.api.schemas import EventIn, Rejection
from serving.store.history import event_dicts

Checked = tuple[pl.DataFrame, list[Rejection]]
#: Accepted events as history events (``serving.store.history``), and the rejections.
Accepted = tuple[list[dict[str, Any]], list[Rejection]]

#: ISO 8601 with a date, a time, at most microseconds and an explicit offset: read the same
#: by Python and by Arrow (ingestion's fast path); anything else takes ingestion's path.
_PLAIN_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Ingestion's own pattern: an id holding an email goes to ``validate_batch``, which
#: rejects it as ``pii_in_identifier`` with the address masked.
_EMAIL = re.compile(EMAIL_IN_TEXT)
_NAMES = frozenset(EVENT_NAMES)
_TEXT_FIELDS = ("item_id", "item_category", "transaction_id", "session_id", "user_id")
#: Integers beyond this are not exact as float64: left to ingestion's rules.
_EXACT_INT = 2**53


def _plain_text(value: object) -> bool:
    """None, or text that ingestion keeps as it is (nothing to strip, not empty)."""
    return value is None or (type(value) is str and value != "" and value.strip() == value)


def _plain_number(value: object) -> bool:
    """None, or a finite, non-negative int or float (not bool)."""
    if value is None:
        return True
    if type(value) is int:
        return 0 <= value < _EXACT_INT
    return type(value) is float and math.isfinite(value) and value >= 0


def plain_events(
    visitor_id: str, events: Sequence[EventIn], limits: ValidationLimits
) -> list[dict[str, Any]] | None:
    """The history events of a request whose every event is plainly valid; None when any is
    not (then ``validate_batch`` decides, and explains each rejection)."""
    if (
        not visitor_id
        or visitor_id.strip() != visitor_id
        or len(visitor_id) > MAX_ID_LENGTH
        or _CONTROL.search(visitor_id)
        or _EMAIL.search(visitor_id)
    ):
        return None
    low, high = limits.min_event_time, limits.max_event_time
    plain: list[dict[str, Any]] = []
    for event in events:
        moment, quantity = event.event_time, event.quantity
        if (
            (event.visitor_id is not None and event.visitor_id != visitor_id)
            or type(moment) is not str
            or not _PLAIN_TIME.fullmatch(moment)
            or type(event.event_name) is not str
            or event.event_name not in _NAMES
            or not all(_plain_text(getattr(event, f)) for f in _TEXT_FIELDS)
            or (type(event.user_id) is str and _EMAIL.search(event.user_id))
            or not (_plain_number(event.price) and _plain_number(event.revenue))
            or not _plain_number(quantity)
            or (quantity is not None and (quantity != int(quantity) or quantity > _EXACT_INT))
        ):
            return None
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            return None
        if not low <= parsed <= high:
            return None
        plain.append(
            {
                "event_time": to_micros(parsed),
                "event_name": event.event_name,
                "item_id": event.item_id,
                "item_category": event.item_category,
                "price": None if event.price is None else float(event.price),
                "quantity": None if quantity is None else int(quantity),
                "revenue": None if event.revenue is None else float(event.revenue),
                "transaction_id": event.transaction_id,
                "session_id": event.session_id,
                "user_id": event.user_id,
            }
        )
    return plain


@dataclass(frozen=True)
class _Pending:
    """One request's events waiting for validation."""

    visitor_id: str
    events: Sequence[EventIn]


def _records(pending: Sequence[_Pending], mapping: SourceMapping) -> pl.DataFrame:
    """One source-records frame for every pending request; ``LINE_COLUMN`` numbers rows."""
    columns = list(mapping.columns.values())
    rows = [(p.visitor_id, e.model_dump()) for p in pending for e in p.events]
    data = {c: [None if r.get(c) is None else str(r.get(c)) for _, r in rows] for c in columns}
    data["visitor_id"] = [r.get("visitor_id") or default for default, r in rows]
    records = pl.DataFrame(data, schema=dict.fromkeys(columns, pl.String))
    return records.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(LINE_COLUMN))


def check_events(
    pending: Sequence[_Pending], mapping: SourceMapping, limits: ValidationLimits
) -> list[Checked]:
    """Validate the events of several requests in one call; per request (accepted, rejected)."""
    records = _records(pending, mapping)
    owner = [(i, j) for i, p in enumerate(pending) for j in range(len(p.events))]
    expected = pl.Series([pending[i].visitor_id for i, _ in owner], dtype=pl.String)
    same = records.get_column("visitor_id") == expected
    checked = validate_batch(records.filter(same), mapping, limits)
    rejected: list[list[Rejection]] = [[] for _ in pending]
    for line, visitor in records.filter(~same).select(LINE_COLUMN, "visitor_id").iter_rows():
        i, j = owner[line]
        rejected[i].append(
            Rejection(index=j, reason="visitor_mismatch", detail=f"visitor_id={visitor}")
        )
    bad_lines = set()
    for line, reason, detail in checked.quarantined.select("line", "reason", "detail").iter_rows():
        i, j = owner[line]
        bad_lines.add(line)
        rejected[i].append(Rejection(index=j, reason=reason, detail=detail))
    # validate_batch keeps accepted rows in input order: map them back by position.
    kept = [
        line
        for line in records.filter(same).get_column(LINE_COLUMN).to_list()
        if line not in bad_lines
    ]
    request = pl.Series([owner[line][0] for line in kept], dtype=pl.Int64)
    accepted = checked.accepted.with_columns(request.alias("_request"))
    parts = accepted.partition_by("_request", as_dict=True, include_key=False)
    empty = checked.accepted.clear()
    return [
        (parts.get((i,), empty), sorted(rejected[i], key=lambda r: r.index))
        for i in range(len(pending))
    ]


class EventIntake:
    """Thread-safe; ``start`` before use, ``stop`` at shutdown."""

    def __init__(self, limits: Callable[[], ValidationLimits]) -> None:
        self._limits = limits
        self._mapping = builtin_mapping("canonical")
        self._batcher: MicroBatcher[_Pending, Checked] = MicroBatcher(
            "event-intake", self._check_all
        )

    def start(self) -> None:
        self._batcher.start()

    def stop(self) -> None:
        self._batcher.stop()

    def accept(self, visitor_id: str, events: Sequence[EventIn]) -> Accepted:
        """(accepted history events, rejections): the plain path when it applies, else
        ingestion's validation through the intake thread."""
        plain = plain_events(visitor_id, events, self._limits())
        if plain is not None:
            return plain, []
        accepted, rejected = self.check(visitor_id, events)
        return event_dicts(accepted), rejected

    async def accept_async(self, visitor_id: str, events: Sequence[EventIn]) -> Accepted:
        """``accept`` for the event loop: the plain path inline (microseconds), ingestion's
        validation awaited without blocking the loop."""
        plain = plain_events(visitor_id, events, self._limits())
        if plain is not None:
            return plain, []
        accepted, rejected = await self._batcher.submit(_Pending(visitor_id, events))
        return event_dicts(accepted), rejected

    def check(self, visitor_id: str, events: Sequence[EventIn]) -> Checked:
        """(accepted canonical events, rejections) for one request's events."""
        return self._batcher.call(_Pending(visitor_id, events))

    def _check_all(self, batch: Sequence[_Pending]) -> list[Checked]:
        return check_events(batch, self._mapping, self._limits())
