"""A visitor's recent events as the real-time path keeps them.

Posted events are checked by ``serving.intake`` with ingestion's rules before they get here.
An event is stored as a JSON object with the canonical fields the online feature evaluator
reads (``HISTORY_FIELDS``), ``event_time`` as Int64 microseconds since the epoch. A batch
history is a JSON array of them; posted events are stored one by one. Reading merges both,
drops exact duplicates (the lake keeps one copy of an event, so the online path must too)
and keeps the latest ``keep``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import polars as pl

from features.events.schema import EVENT_COLUMNS
from features.rows import to_micros

#: What the online state keeps of each event: everything but who and which reader.
HISTORY_FIELDS: tuple[str, ...] = tuple(
    c for c in EVENT_COLUMNS if c not in ("visitor_id", "source")
)
_EVENT_JSON = pl.struct(
    pl.col("event_time").dt.epoch("us").alias("event_time"), *HISTORY_FIELDS[1:]
).struct.json_encode()


def batch_histories(
    events: pl.LazyFrame, as_of: datetime, lookback: timedelta, keep: int
) -> pl.LazyFrame:
    """``visitor_id`` and ``history`` (Binary JSON array, oldest first, at most ``keep``) of
    every visitor with canonical events in ``[as_of - lookback, as_of)``."""
    window = (pl.col("event_time") >= as_of - lookback) & (pl.col("event_time") < as_of)
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
    rows, or history events (``event_dicts``, ``serving.intake.plain_events``)."""
    events = event_dicts(accepted) if isinstance(accepted, pl.DataFrame) else accepted
    return [orjson.dumps({f: event[f] for f in HISTORY_FIELDS}) for event in events]


def read_history(
    batch_history: bytes | None, posted: Sequence[bytes], keep: int
) -> list[dict[str, Any]]:
    """Batch history then posted events, exact duplicates dropped, the latest ``keep``."""
    events: list[dict[str, Any]] = orjson.loads(batch_history) if batch_history else []
    events += [orjson.loads(e) for e in posted]
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for event in events:
        key = tuple(map(event.get, HISTORY_FIELDS))
        if key not in seen:
            seen.add(key)
            unique.append(event)
    unique.sort(key=lambda e: int(e["event_time"]))
    return unique[-keep:]
