"""A visitor's recent events as the real-time path keeps them.

Posted events are checked by ``serving.api.intake`` with ingestion's rules before they get here.
An event is stored as a JSON object with the canonical fields the online feature evaluator
reads (``HISTORY_FIELDS``), ``event_time`` as Int64 microseconds since the epoch. A batch
history is a JSON array of them; posted events are stored one by one. Reading merges both,
drops posted events that repeat one already there (the lake keeps one copy of an event, so
the online path must too) and keeps the latest ``keep``.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl

from features.events.schema import EVENT_COLUMNS
from features.rows import to_micros

#: What the online state keeps of each event: everything but who and which reader.
HISTORY_FIELDS: tuple[str, ...] = tuple(
    c for c in EVENT_COLUMNS if c not in ("visitor_id", "source")
)
#: Where the histories of a full-history model start: before any event.
EARLIEST = datetime.min.replace(tzinfo=UTC)
_EVENT_JSON = pl.struct(
    pl.col("event_time").dt.epoch("us").alias("event_time"), *HISTORY_FIELDS[1:]
).struct.json_encode()


def batch_histories(
    events: pl.LazyFrame, as_of: datetime, lookback: timedelta | None, keep: int
) -> pl.LazyFrame:
    """``visitor_id`` and ``history`` (Binary JSON array, oldest first, at most ``keep``) of
    every visitor with canonical events in ``[as_of - lookback, as_of)`` (every event before
    ``as_of`` for a full-history ``None``: ``keep`` still bounds each history)."""
    window = pl.col("event_time") < as_of
    if lookback is not None:
        window &= pl.col("event_time") >= as_of - lookback
    return (
        events.filter(window)
        .group_by("visitor_id")
        .agg(_EVENT_JSON.sort_by("event_time").tail(keep).str.join(",").alias("_joined"))
        .select("visitor_id", pl.format("[{}]", "_joined").cast(pl.Binary).alias("history"))
    )


def event_dicts(accepted: pl.DataFrame) -> list[dict[str, Any]]:
    """Canonical event rows as history events (``HISTORY_FIELDS``, time in microseconds)."""
    fields = HISTORY_FIELDS[1:]
    return [
        {"event_time": to_micros(row[0]), **dict(zip(fields, row[1:], strict=True))}
        for row in accepted.select(HISTORY_FIELDS).rows()
    ]


def encode_events(accepted: pl.DataFrame | Sequence[Mapping[str, Any]]) -> list[bytes]:
    """Each event as stored JSON (the same fields and values as a batch history): canonical
    rows, or history events (``event_dicts``, ``serving.api.intake.plain_events``)."""
    events = event_dicts(accepted) if isinstance(accepted, pl.DataFrame) else accepted
    return [orjson.dumps({f: event[f] for f in HISTORY_FIELDS}) for event in events]


@dataclass(frozen=True)
class StoredHistory:
    """A visitor's events as read from the store, and whether the count limit dropped any:
    the merged history held more than ``keep``, or the batch history was cut at ``keep``
    when the run published it."""

    events: list[dict[str, Any]]
    truncated: bool

    def holds_events_from(self, as_of: datetime) -> bool:
        """Whether an event at or after ``as_of`` is stored: a record scored as of then
        would not count it, so it must not replace the stored one."""
        cut = to_micros(as_of)
        return any(event["event_time"] >= cut for event in self.events)

    def complete(
        self, as_of: datetime, lookback: timedelta | None, stored_from: datetime | None
    ) -> bool:
        """Whether it holds every event a model with ``lookback`` (None: full history) reads
        at ``as_of``: the run's histories reach back to ``stored_from`` (None: unknown, or no
        run; ``EARLIEST``: every event), at or before ``as_of - lookback``, and nothing
        inside that window was dropped."""
        start = EARLIEST if lookback is None else as_of - lookback
        if stored_from is None or stored_from > start:
            return False
        # Dropped events are older than the oldest kept one: inside the window only if it is.
        return not (self.truncated and self.events[0]["event_time"] >= to_micros(start))


def read_history(
    batch_history: bytes | None, posted: Sequence[bytes], keep: int
) -> list[dict[str, Any]]:
    """Batch history then posted events, those repeating an event already there dropped,
    the latest ``keep``, in time order."""
    return read_stored_history(batch_history, posted, keep).events


def read_stored_history(
    batch_history: bytes | None, posted: Sequence[bytes], keep: int
) -> StoredHistory:
    """``read_history`` with whether the count limit dropped events."""
    events: list[dict[str, Any]] = orjson.loads(batch_history) if batch_history else []
    cut_at_publish = len(events) >= keep
    if posted:
        # The batch history comes from the lake, which keeps one copy of an event: only a
        # posted event can repeat one, of the batch or posted before. Equal events have
        # equal times, so the batch's events are keyed only when a time matches (keying
        # every event of every history was a tenth of a re-score).
        times = {event["event_time"] for event in events}
        batch_keys: set[tuple[Any, ...]] | None = None
        seen: set[tuple[Any, ...]] = set()
        for raw in posted:
            event = orjson.loads(raw)
            key = _key(event)
            if key in seen:
                continue
            if event["event_time"] in times:
                if batch_keys is None:
                    batch_keys = {_key(e) for e in events}
                if key in batch_keys:
                    continue
            seen.add(key)
            events.append(event)
    events.sort(key=_TIME)
    return StoredHistory(events[-keep:], cut_at_publish or len(events) > keep)


_FIELDS = operator.itemgetter(*HISTORY_FIELDS)
_TIME = operator.itemgetter("event_time")


def _key(event: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two events the same event: every field (absent reads as null)."""
    try:
        return _FIELDS(event)
    except KeyError:  # stored by a version that kept fewer fields
        return tuple(map(event.get, HISTORY_FIELDS))


@dataclass(frozen=True)
class CarryWindow:
    """What a publish keeps of the live generation's posted events (``ScoreStore.publish``):
    those at or after ``start`` (None: every one), in microseconds since the epoch; a visitor
    with one at or after ``as_of`` (the new run could not see it) keeps its live record."""

    start: int | None
    as_of: int

    @classmethod
    def of(cls, run_as_of: datetime, history_start: datetime | None) -> CarryWindow:
        start = None if history_start is None else to_micros(history_start)
        return cls(start, to_micros(run_as_of))

    def carried(self, posted: Sequence[bytes]) -> tuple[list[bytes], bool]:
        """The posted events the next generation keeps, in order, and whether one is at or
        after ``as_of``. An event that is not a stored event is kept only without a
        ``start`` (it has no time to judge by)."""
        kept: list[bytes] = []
        late = False
        for raw in posted:
            time = _event_time(raw)
            if self.start is None or (time is not None and time >= self.start):
                kept.append(raw)
                late = late or (time is not None and time >= self.as_of)
        return kept, late


def _event_time(raw: bytes) -> int | None:
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    time = event.get("event_time") if isinstance(event, dict) else None
    return time if type(time) is int else None
