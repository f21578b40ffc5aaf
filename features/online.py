"""Online features: one visitor's features from their recent events, in well under a
millisecond, evaluated from the same declarations as the batch engines.

``features.definitions`` declares every feature as data; this module compiles each
declaration to numpy once (in ``OnlineFeatureEvaluator.__init__``), and
``features.batch`` compiles the same declarations to narwhals. The row model
(``features.rows``) is the one part written twice; ``tests/unit/test_features_properties.py``
holds the two to each other over random event histories.

Input: the visitor's canonical events as mappings (``event_time`` an aware datetime or Int64
microseconds since the epoch; other canonical keys optional) or a Polars frame. Only events
in ``[as_of - lookback, as_of)`` are used. Output: floats in ``FEATURE_COLUMNS`` order, NaN
where the batch value is null. A visitor without events in the window gets zero counts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
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
from features.rows import micros, to_micros
from features.spec import Aggregate, Derived, Range, RowFilter

Rows = dict[str, np.ndarray]
_PURCHASE = EventName.PURCHASE.value


class OnlineFeatureEvaluator:
    """Compiled once per process (per ``FeatureConfig``); ``vector`` is pure and thread-safe."""

    def __init__(
        self, config: FeatureConfig | None = None, only: Collection[str] | None = None
    ) -> None:
        """``only``: evaluate just these features (and what they derive from); the others
        come out NaN. A scorer needs only its model's inputs, at a fraction of the cost."""
        self.config = config or FeatureConfig()
        self._lookback_us = micros(self.config.lookback)
        self._timeout_us = micros(self.config.session_timeout)
        self._local_us = micros(self.config.local_time_offset)
        self._steps: list[tuple[str, Callable[[_Masks], float]]] = []
        self._derived: list[Derived] = []
        wanted = _closure(only) if only is not None else {f.name for f in FEATURES}
        for feature in FEATURES:
            if feature.name not in wanted:
                continue
            if isinstance(feature, Aggregate):
                self._steps.append((feature.name, _compile(feature)))
            else:
                self._derived.append(feature)

    def vector(
        self, events: Sequence[Mapping[str, Any]] | pl.DataFrame, as_of: datetime
    ) -> np.ndarray:
        """Features of one visitor as a float64 vector in ``FEATURE_COLUMNS`` order."""
        values = self._evaluate(events, as_of)
        return np.array([values.get(name, np.nan) for name in FEATURE_COLUMNS], dtype=np.float64)

    def features(
        self, events: Sequence[Mapping[str, Any]] | pl.DataFrame, as_of: datetime
    ) -> dict[str, float]:
        values = self._evaluate(events, as_of)
        return {name: values.get(name, np.nan) for name in FEATURE_COLUMNS}

    def _evaluate(
        self, events: Sequence[Mapping[str, Any]] | pl.DataFrame, as_of: datetime
    ) -> dict[str, float]:
        records = events.to_dicts() if isinstance(events, pl.DataFrame) else events
        rows = self._rows(records, to_micros(as_of))
        masks = _Masks(rows)
        values = {name: step(masks) for name, step in self._steps}
        for d in self._derived:
            values[d.name] = _derive(d, values)
        return values

    def _rows(self, events: Sequence[Mapping[str, Any]], as_of_us: int) -> Rows:
        start_us = as_of_us - self._lookback_us
        kept: list[tuple[int, str, Mapping[str, Any]]] = []
        for event in events:
            moment = event["event_time"]
            moment_us = to_micros(moment) if isinstance(moment, datetime) else int(moment)
            if start_us <= moment_us < as_of_us:
                kept.append((moment_us, event.get("session_id") or "", event))
        kept.sort(key=lambda row: (row[0], row[1]))
        us = np.array([row[0] for row in kept], dtype=np.int64)
        sid = np.array([row[1] for row in kept], dtype=object)

        def column(name: str) -> np.ndarray:
            return np.array([row[2].get(name) for row in kept], dtype=object)

        def numbers(name: str) -> np.ndarray:
            raw = [row[2].get(name) for row in kept]
            return np.array([np.nan if x is None else x for x in raw], dtype=np.float64)

        gap = np.diff(us)
        same = (gap <= self._timeout_us) & (
            (sid[1:] == "") | (sid[:-1] == "") | (sid[1:] == sid[:-1])
        )
        names, items = column("event_name"), column("item_id")
        quantity = numbers("quantity")
        local = us + self._local_us
        day = local // MICROS_PER_DAY
        return {
            "event_name": names,
            "item_id": items,
            "item_category": column("item_category"),
            "transaction_id": column("transaction_id"),
            "price": numbers("price"),
            "revenue": numbers("revenue"),
            "line_value": numbers("price") * np.where(np.isnan(quantity), 1.0, quantity),
            "offset_us": us - as_of_us,
            "session_start": np.concatenate([[True], ~same]) if len(us) else same,
            "session_gap_us": np.concatenate([[0], np.where(same, gap, 0)]) if len(us) else gap,
            "abandoned": _abandoned(us, names, items),
            "has_user": np.array([row[2].get("user_id") is not None for row in kept], dtype=bool),
            "hour": (local // MICROS_PER_HOUR) % 24,
            "day": day,
            "weekday": (day + 3) % 7,
        }


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


def _abandoned(us: np.ndarray, names: np.ndarray, items: np.ndarray) -> np.ndarray:
    """No purchase of the same item (None matches None) at or after the row's time."""
    last_buy: dict[Any, int] = {}
    for t, name, item in zip(us.tolist(), names.tolist(), items.tolist(), strict=True):
        if name == _PURCHASE and t > last_buy.get(item, -1):
            last_buy[item] = t
    return np.array(
        [last_buy.get(item, -1) < t for t, item in zip(us.tolist(), items.tolist(), strict=True)],
        dtype=bool,
    )


class _Masks:
    """Row masks of one evaluation, each event name, range and filter computed once."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self._events: dict[str, np.ndarray] = {}
        self._ranges: dict[Range, np.ndarray] = {}
        self._filters: dict[RowFilter, np.ndarray] = {}

    def __call__(self, where: RowFilter) -> np.ndarray:
        mask = self._filters.get(where)
        if mask is None:
            mask = self._filters[where] = self._build(where)
        return mask

    def _build(self, where: RowFilter) -> np.ndarray:
        rows = self.rows
        mask = np.ones(len(rows["offset_us"]), dtype=bool)
        if where.events is not None:
            mask = np.logical_or.reduce([self._event(str(e)) for e in where.events]) & mask
        for r in where.ranges:
            if r not in self._ranges:
                self._ranges[r] = (rows[r.column] >= r.lo) & (rows[r.column] < r.hi)
            mask = mask & self._ranges[r]
        if where.flag is not None:
            mask = mask & rows[where.flag]
        return mask

    def _event(self, name: str) -> np.ndarray:
        if name not in self._events:
            self._events[name] = self.rows["event_name"] == name
        return self._events[name]


def _compile(feature: Aggregate) -> Callable[[_Masks], float]:
    """A numpy evaluator with the null semantics documented on ``Aggregate``."""
    kind, column, where = feature.kind, feature.column, feature.where

    def evaluate(masks: _Masks) -> float:
        mask = masks(where)
        if kind == "count":
            return float(np.count_nonzero(mask))
        if kind == "any":
            return float(mask.any())
        assert column is not None
        values = masks.rows[column][mask]
        if kind == "n_distinct":
            return float(len({v for v in values.tolist() if v is not None}))
        if values.dtype == np.float64:
            values = values[~np.isnan(values)]
        if kind == "sum":
            return float(values.sum()) if len(values) else 0.0
        if not len(values):
            return float("nan")
        return float(getattr(values, kind)())

    return evaluate


def _derive(feature: Derived, values: Mapping[str, float]) -> float:
    numerator = values[feature.numerator]
    if feature.op == "scale":
        return numerator * feature.factor
    assert feature.denominator is not None
    denominator = values[feature.denominator]
    if not denominator > 0:
        return float("nan")
    return numerator / denominator * feature.factor
