"""Online features: the features of a few visitors from their recent events, in well under a
millisecond per visitor, evaluated from the same declarations as the batch engines.

``features.definitions`` declares every feature as data; this module compiles each
declaration to numpy once (in ``OnlineFeatureEvaluator.__init__``), and
``features.batch`` compiles the same declarations to narwhals. The row model
(``features.rows``) is the one part written twice; ``tests/unit/features/test_properties.py``
holds the two to each other over random event histories.

Input: per visitor, their canonical events as mappings (``event_time`` an aware datetime or
Int64 microseconds since the epoch; other canonical keys optional) or a Polars frame, and
their ``as_of``. Only events in ``[as_of - lookback, as_of)`` are used (every event before
``as_of`` for a full-history lookback). Output: one row of
floats per visitor in ``FEATURE_COLUMNS`` order, NaN where the batch value is null. A visitor
without events in the window gets zero counts.

All visitors of a call are evaluated at once: their rows are concatenated, sorted by
(visitor, event time, session id) and tagged with the visitor's position (the *segment*);
each row mask is computed once over all rows and each aggregate reduces per segment. Python
work per call is then per aggregate, not per visitor and aggregate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from features.definitions import (
    FEATURE_COLUMNS,
    FEATURES,
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    FeatureConfig,
)
from features.events.schema import EventName
from features.online_plan import AggregatePlan, DerivedPlan, Segments
from features.rows import micros, to_micros
from features.spec import Aggregate, Derived

Rows = dict[str, np.ndarray]
History = Sequence[Mapping[str, Any]] | pl.DataFrame
_PURCHASE = EventName.PURCHASE.value
_NEVER = np.iinfo(np.int64).min
_UNBOUNDED_US = np.iinfo(np.int64).max
#: Event fields read as floats (None -> NaN) and as they are.
_NUMBERS = ("price", "quantity", "revenue")
_LABELS = ("event_name", "item_id", "item_category", "transaction_id")


class OnlineFeatureEvaluator:
    """Compiled once per process (per ``FeatureConfig``); evaluation is pure and thread-safe."""

    def __init__(
        self, config: FeatureConfig | None = None, only: Collection[str] | None = None
    ) -> None:
        """``only``: evaluate just these features (and what they derive from); the others
        come out NaN. A scorer needs only its model's inputs, at a fraction of the cost."""
        self.config = config or FeatureConfig()
        # An unbounded lookback as the earliest time int64 microseconds can hold.
        lookback = self.config.lookback
        self._lookback_us = _UNBOUNDED_US if lookback is None else micros(lookback)
        self._timeout_us = micros(self.config.session_timeout)
        self._local_us = micros(self.config.local_time_offset)
        wanted = _closure(only) if only is not None else {f.name for f in FEATURES}
        aggregates = [f for f in FEATURES if f.name in wanted and isinstance(f, Aggregate)]
        self._aggregates = AggregatePlan(aggregates)
        self._derived = DerivedPlan(
            [f for f in FEATURES if f.name in wanted and isinstance(f, Derived)],
            [a.name for a in aggregates],
        )
        self._output = [name for name in FEATURE_COLUMNS if name in wanted]
        self._positions = np.array([FEATURE_COLUMNS.index(n) for n in self._output], np.intp)

    def matrix(
        self, histories: Sequence[History], as_of: Sequence[datetime] | datetime
    ) -> np.ndarray:
        """Features of many visitors, one float64 row per history in ``FEATURE_COLUMNS``
        order; ``as_of`` is one time for all or one per history. Each visitor's features
        are those of their own events and ``as_of`` alone."""
        moments = [as_of] * len(histories) if isinstance(as_of, datetime) else list(as_of)
        if len(moments) != len(histories):
            raise ValueError(f"{len(histories)} histories but {len(moments)} as_of values")
        as_of_us = np.array([to_micros(m) for m in moments], dtype=np.int64)
        records = [h.to_dicts() if isinstance(h, pl.DataFrame) else h for h in histories]
        rows = self._rows(records, as_of_us)
        segments = Segments(rows["segment"], len(records))
        values = self._aggregates.evaluate(rows, segments)
        self._derived.evaluate(values, len(records))
        out = np.full((len(records), len(FEATURE_COLUMNS)), np.nan)
        if self._output:
            # np.array, not np.stack: one C call instead of a Python pass per feature.
            out[:, self._positions] = np.array([values[n] for n in self._output]).T
        return out

    def vector(self, events: History, as_of: datetime) -> np.ndarray:
        """Features of one visitor as a float64 vector in ``FEATURE_COLUMNS`` order."""
        return self.matrix([events], as_of)[0]

    def features(self, events: History, as_of: datetime) -> dict[str, float]:
        row = self.vector(events, as_of).tolist()
        return dict(zip(FEATURE_COLUMNS, row, strict=True))

    def _rows(self, histories: Sequence[Sequence[Mapping[str, Any]]], as_of_us: np.ndarray) -> Rows:
        """The row model of every history, ordered by (segment, event time, session id);
        ``segment`` is the history's position."""
        flat = [event for events in histories for event in events]
        seg = np.repeat(np.arange(len(histories)), [len(events) for events in histories])
        us = _micros([event["event_time"] for event in flat])
        end_us = as_of_us[seg]
        # Subtracting an unbounded lookback could overflow: compare the offset instead.
        inside = np.flatnonzero((end_us - us <= self._lookback_us) & (us < end_us))
        # Fixed-width unicode sorts and compares natively, in code point order like str.
        sid = np.array([flat[i].get("session_id") or "" for i in inside.tolist()], dtype=str)
        order = np.lexsort((sid, us[inside], seg[inside]))
        sid, taken = sid[order], inside[order]
        kept = [flat[i] for i in taken.tolist()]
        us, seg = us[taken], seg[taken]
        columns = {c: np.array([e.get(c) for e in kept], dtype=object) for c in _LABELS}
        price, quantity, revenue = (
            np.array([e.get(c) for e in kept], dtype=np.float64) for c in _NUMBERS
        )
        gap = np.diff(us)
        # A session never runs from one visitor's rows into the next visitor's.
        same = (
            (seg[1:] == seg[:-1])
            & (gap <= self._timeout_us)
            & ((sid[1:] == "") | (sid[:-1] == "") | (sid[1:] == sid[:-1]))
        )
        local = us + self._local_us
        day = local // MICROS_PER_DAY
        return {
            "segment": seg,
            **columns,
            "price": price,
            "revenue": revenue,
            "line_value": price * np.where(np.isnan(quantity), 1.0, quantity),
            "offset_us": us - as_of_us[seg],
            "session_start": np.concatenate([[True], ~same]) if len(us) else same,
            "session_gap_us": np.concatenate([[0], np.where(same, gap, 0)]) if len(us) else gap,
            "abandoned": _abandoned(seg, us, columns["event_name"], columns["item_id"]),
            "has_user": np.array([e.get("user_id") is not None for e in kept], dtype=bool),
            "hour": (local // MICROS_PER_HOUR) % 24,
            "day": day,
            "weekday": (day + 3) % 7,
        }


def _micros(moments: list[Any]) -> np.ndarray:
    """Event times (aware datetimes or microseconds since the epoch) as Int64 microseconds."""
    try:
        return np.array(moments, dtype=np.int64)
    except TypeError:
        return np.array(
            [to_micros(m) if isinstance(m, datetime) else int(m) for m in moments], dtype=np.int64
        )


def _closure(names: Collection[str]) -> set[str]:
    """``names`` and every feature a derived one among them is computed from."""
    by_name = {f.name: f for f in FEATURES}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise ValueError(f"unknown features {unknown}")
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        feature = by_name[name]
        if isinstance(feature, Derived):
            todo += [n for n in (feature.numerator, feature.denominator) if n is not None]
    return wanted


def _abandoned(seg: np.ndarray, us: np.ndarray, names: np.ndarray, items: np.ndarray) -> np.ndarray:
    """No purchase of the same visitor and item (None matches None) at or after the row."""
    buys = np.flatnonzero(names == _PURCHASE)
    if not len(buys):
        return np.ones(len(us), dtype=bool)
    codes: dict[Any, int] = {}
    item_codes = np.array([codes.setdefault(item, len(codes)) for item in items.tolist()])
    # One key per (visitor, item); the last purchase per key, compared with each row's time.
    _, key = np.unique(seg * len(codes) + item_codes, return_inverse=True)
    last_buy = np.full(key.max() + 1, _NEVER)
    np.maximum.at(last_buy, key[buys], us[buys])
    return last_buy[key] < us
