"""Feature declarations compiled to a few numpy table operations over segmented rows.

The rows (the row model of ``features.rows``, built by ``features.online``) of several
visitors are concatenated and sorted by ``segment``, the visitor's position in the batch.
``AggregatePlan`` evaluates every ``Aggregate`` at once: each event name, range and flag is
one row mask, and every ``RowFilter`` is gathered from them into one boolean table (filters
by rows, ``FilterPlan``); counts of every filter are one reduction per segment
(``ufunc.reduceat`` over the segment starts), sums, means, minima and maxima of every column
are one table reduced four ways, and distinct values are counted from (aggregate, visitor,
value) triples. ``DerivedPlan`` computes the ``Derived`` features columnwise, a layer at a
time. The Python work of an evaluation is thus a fixed number of numpy calls plus a few
passes over the rows, not work per visitor and feature.

Null semantics are those documented on ``Aggregate`` and ``Derived``: NaN stands for null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from features.spec import Aggregate, Derived, Range, RowFilter

Rows = Mapping[str, np.ndarray]
Values = dict[str, np.ndarray]


class Segments:
    """Where each visitor's rows start; ``segment`` (one per row) is sorted."""

    def __init__(self, segment: np.ndarray, visitors: int) -> None:
        self.visitors = visitors
        if len(segment):
            self.starts = np.flatnonzero(np.concatenate([[True], segment[1:] != segment[:-1]]))
        else:
            self.starts = np.zeros(0, dtype=np.intp)
        self.owners = segment[self.starts]

    def reduce(self, ufunc: np.ufunc, table: np.ndarray, empty: float) -> np.ndarray:
        """``ufunc`` over each segment's columns of ``table`` (conditions by rows) -> one
        column per visitor; ``empty`` for a visitor without rows."""
        if len(self.starts) == self.visitors > 0:  # every visitor has rows: no gaps to fill
            return ufunc.reduceat(table, self.starts, axis=1).astype(np.float64, copy=False)
        out = np.full((table.shape[0], self.visitors), empty)
        if len(self.starts):
            out[:, self.owners] = ufunc.reduceat(table, self.starts, axis=1)
        return out


class AggregatePlan:
    """Built once per evaluator from its aggregates; ``evaluate`` is pure."""

    def __init__(self, aggregates: Sequence[Aggregate]) -> None:
        filters = list(dict.fromkeys(a.where for a in aggregates))
        self._filters = FilterPlan(filters)
        counted = [a for a in aggregates if a.kind in ("count", "any")]
        self._counted = _Counted(counted, filters) if counted else None
        numeric = [a for a in aggregates if a.kind in ("sum", "mean", "min", "max")]
        self._numeric = _Numeric(numeric, filters) if numeric else None
        distinct = [a for a in aggregates if a.kind == "n_distinct"]
        self._distinct = _Distinct(distinct, filters) if distinct else None

    def evaluate(self, rows: Rows, segments: Segments) -> Values:
        """Every aggregate, one value per visitor (name -> array of ``visitors``)."""
        masks = self._filters.masks(rows)
        values: Values = {}
        for part in (self._counted, self._numeric, self._distinct):
            if part is not None:
                values.update(zip(part.names, part.evaluate(rows, masks, segments), strict=True))
        return values


class _Counted:
    """``count`` and ``any``: rows passing the filter per visitor."""

    def __init__(self, aggregates: Sequence[Aggregate], filters: list[RowFilter]) -> None:
        self.names = [a.name for a in aggregates]
        self._filter_rows = np.array([filters.index(a.where) for a in aggregates], np.intp)
        self._is_any = np.array([[a.kind == "any"] for a in aggregates])

    def evaluate(self, rows: Rows, masks: np.ndarray, segments: Segments) -> np.ndarray:
        counts = segments.reduce(np.add, masks[self._filter_rows], 0.0)
        return np.where(self._is_any, counts > 0, counts)


class _Numeric:
    """``sum``, ``mean``, ``min`` and ``max``, nulls (NaN) ignored: one table of the values
    each aggregate reads (aggregates by rows), reduced per visitor in all four ways at once
    (cheaper than one pass per kind for the few hundred rows of a batch)."""

    def __init__(self, aggregates: Sequence[Aggregate], filters: list[RowFilter]) -> None:
        self.names = [a.name for a in aggregates]
        self._columns = list(dict.fromkeys(str(a.column) for a in aggregates))
        self._column_rows = np.array([self._columns.index(str(a.column)) for a in aggregates])
        self._filter_rows = np.array([filters.index(a.where) for a in aggregates], np.intp)
        kinds = ("sum", "mean", "max", "min")
        self._pick = (
            np.array([kinds.index(a.kind) for a in aggregates]),
            np.arange(len(aggregates)),
        )
        # A sum of no values is 0; a mean, max or min of none is null.
        self._nullable = np.array([[a.kind != "sum"] for a in aggregates])

    def evaluate(self, rows: Rows, masks: np.ndarray, segments: Segments) -> np.ndarray:
        values = np.array([rows[c] for c in self._columns], np.float64)[self._column_rows]
        valid = masks[self._filter_rows] & ~np.isnan(values)
        counts = segments.reduce(np.add, valid, 0.0)
        sums = segments.reduce(np.add, np.where(valid, values, 0.0), 0.0)
        highs = segments.reduce(np.maximum, np.where(valid, values, -np.inf), -np.inf)
        lows = segments.reduce(np.minimum, np.where(valid, values, np.inf), np.inf)
        table = np.array([sums, sums / np.maximum(counts, 1.0), highs, lows])[self._pick]
        return np.where(self._nullable & (counts == 0), np.nan, table)


class _Distinct:
    """``n_distinct``: distinct non-null (aggregate, visitor, value) triples, counted."""

    def __init__(self, aggregates: Sequence[Aggregate], filters: list[RowFilter]) -> None:
        self.names = [a.name for a in aggregates]
        self._columns = list(dict.fromkeys(str(a.column) for a in aggregates))
        self._column_rows = np.array([self._columns.index(str(a.column)) for a in aggregates])
        self._filter_rows = np.array([filters.index(a.where) for a in aggregates], np.intp)

    def evaluate(self, rows: Rows, masks: np.ndarray, segments: Segments) -> np.ndarray:
        table = np.stack([rows[c].astype(object) for c in self._columns])[self._column_rows]
        which, row = np.nonzero(masks[self._filter_rows])
        owners = rows["segment"][row].tolist()
        triples = zip(which.tolist(), owners, table[which, row].tolist(), strict=True)
        found = {(a, s, v) for a, s, v in triples if v is not None}
        shape = (len(self.names), segments.visitors)
        keys = np.fromiter((a * shape[1] + s for a, s, _ in found), np.intp, len(found))
        return np.bincount(keys, minlength=shape[0] * shape[1]).reshape(shape).astype(np.float64)


class FilterPlan:
    """Row masks of many ``RowFilter``s in a few table operations: a filter is an OR over its
    events of event rows, an AND over its ranges of range rows, and its flag."""

    def __init__(self, filters: Sequence[RowFilter]) -> None:
        names = sorted({str(e) for f in filters for e in f.events or ()})
        self._code = {name: i for i, name in enumerate(names)}
        self._codes = np.arange(len(names))[:, None]
        # Event table rows: 0 every row, 1 no row, 2 + code the rows of that event.
        self._event_rows = _padded(
            [
                [0] if f.events is None else [2 + self._code[str(e)] for e in f.events]
                for f in filters
            ],
            fill=1,
        )
        by_column: dict[str, list[Range]] = {}
        for r in dict.fromkeys(r for f in filters for r in f.ranges):
            by_column.setdefault(r.column, []).append(r)
        self._bounds = {
            column: (np.array([r.lo for r in rs])[:, None], np.array([r.hi for r in rs])[:, None])
            for column, rs in by_column.items()
        }
        # Range table rows: 0 every row, then each column's ranges in turn.
        ranges = [r for rs in by_column.values() for r in rs]
        self._range_rows = _padded(
            [[1 + ranges.index(r) for r in f.ranges] or [0] for f in filters], fill=0
        )
        self._flags = list(dict.fromkeys(f.flag for f in filters if f.flag is not None))
        self._flag_rows = np.array(
            [0 if f.flag is None else 1 + self._flags.index(f.flag) for f in filters], np.intp
        )

    def masks(self, rows: Rows) -> np.ndarray:
        """One boolean row mask per filter (filters by rows)."""
        names = rows["event_name"].tolist()
        codes = np.fromiter((self._code.get(n, -1) for n in names), np.intp, len(names))
        everything = np.ones((1, len(names)), dtype=bool)
        events = np.concatenate([everything, ~everything, codes == self._codes])
        ranges = np.concatenate(
            [everything]
            + [(rows[c] >= lo) & (rows[c] < hi) for c, (lo, hi) in self._bounds.items()]
        )
        flags = np.concatenate([everything] + [rows[f][None, :] for f in self._flags])
        mask = np.logical_or.reduce(events[self._event_rows], axis=0)
        mask &= np.logical_and.reduce(ranges[self._range_rows], axis=0)
        return mask & flags[self._flag_rows]


def _padded(lists: list[list[int]], fill: int) -> np.ndarray:
    """Lists of table rows as one index array (position by filter), short lists padded with
    ``fill`` (a row that leaves the OR or AND unchanged)."""
    width = max((len(x) for x in lists), default=1)
    return np.array([x + [fill] * (width - len(x)) for x in lists], dtype=np.intp).T


class DerivedPlan:
    """``Derived`` features in layers (a layer only reads earlier ones), each layer computed
    columnwise: ``scale`` is a ratio over a denominator of 1."""

    def __init__(self, derived: Sequence[Derived], known: Sequence[str]) -> None:
        available, pending = set(known), list(derived)
        self._layers: list[tuple[list[str], list[str], list[str | None], np.ndarray]] = []
        while pending:
            layer = [d for d in pending if {d.numerator, d.denominator} - {None} <= available]
            if not layer:
                raise ValueError(f"derived features without inputs: {[d.name for d in pending]}")
            pending = [d for d in pending if d not in layer]
            available |= {d.name for d in layer}
            self._layers.append(
                (
                    [d.name for d in layer],
                    [d.numerator for d in layer],
                    [d.denominator if d.op == "ratio" else None for d in layer],
                    np.array([[d.factor] for d in layer]),
                )
            )

    def evaluate(self, values: Values, visitors: int) -> None:
        """Add the derived features to ``values`` (a zero or NaN denominator gives NaN)."""
        one = np.ones(visitors)
        for names, numerators, denominators, factors in self._layers:
            top = np.array([values[n] for n in numerators])
            bottom = np.array([one if d is None else values[d] for d in denominators])
            usable = bottom > 0
            table = np.where(usable, top / np.where(usable, bottom, 1.0) * factors, np.nan)
            values.update(zip(names, table, strict=True))
