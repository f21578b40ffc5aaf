"""Batch features: compile the declarations of ``features.definitions`` to narwhals
expressions and run them on Polars or Spark.

Output grain: one row per visitor with at least one event in the lookback window before
``as_of``; columns ``visitor_id``, ``as_of`` and ``FEATURE_COLUMNS`` (Int64 counts, Float64
values; see ``FEATURE_KINDS``). Row order is unspecified.
"""

from __future__ import annotations

import functools
import operator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import narwhals as nw
import polars as pl

from features.definitions import FEATURES, PUBLIC_FEATURES, FeatureConfig
from features.engines import Engine, EventsSource, load_events
from features.rows import NARROW_COLUMNS, SESSION_COLUMNS, build_rows, build_session_rows
from features.spec import Aggregate, Derived, Feature, Range, RowFilter

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession


# Aggregation runs in two stages, both compiled from the same declarations: stage 1 groups
# rows by (visitor_id, event_name) and computes each distinct *partial* (a declaration minus
# its event-name filter), stage 2 groups those few rows by visitor_id and combines the
# partials of the wanted event names. Most declarations differ only in their event names, so
# this does ~25 aggregations over the events instead of ~75 (3x faster on Polars).
Partial = tuple[str, str | None, tuple[Range, ...], str | None]
_PARTIAL_OF: dict[str, tuple[str, ...]] = {
    "count": ("count",),
    "any": ("count",),
    "sum": ("sum",),
    "min": ("min",),
    "max": ("max",),
    "mean": ("sum", "non_null"),
    "n_distinct": ("n_distinct",),
}


def filter_expr(where: RowFilter, *, with_events: bool = True) -> nw.Expr | None:
    """The row condition of ``where``; None keeps every row."""
    conditions: list[nw.Expr] = []
    if with_events and where.events is not None:
        conditions.append(events_expr(where.events))
    for r in where.ranges:
        conditions += [nw.col(r.column) >= r.lo, nw.col(r.column) < r.hi]
    if where.flag is not None:
        conditions.append(nw.col(where.flag))
    return functools.reduce(operator.and_, conditions) if conditions else None


def events_expr(events: tuple[str, ...]) -> nw.Expr:
    names = [str(e) for e in events]
    event = nw.col("event_name")
    return event == names[0] if len(names) == 1 else event.is_in(names)


def _decomposable(feature: Aggregate) -> bool:
    """A distinct count splits by event name only when it reads a single event name."""
    return feature.kind != "n_distinct" or (
        feature.where.events is not None and len(feature.where.events) == 1
    )


def _partials(feature: Aggregate) -> list[Partial]:
    where = feature.where
    column = None if feature.kind in ("count", "any") else feature.column
    return [(kind, column, where.ranges, where.flag) for kind in _PARTIAL_OF[feature.kind]]


def row_aggregate_expr(kind: str, column: str | None, condition: nw.Expr | None) -> nw.Expr:
    """One aggregation of rows; boolean sums are cast first (Spark cannot sum booleans)."""
    if kind == "count":
        return nw.len() if condition is None else condition.cast(nw.Int64).sum()
    if column is None:
        raise ValueError(f"{kind} needs a column")
    value = nw.col(column)
    if kind == "non_null":
        present = ~value.is_null()
        return (present if condition is None else condition & present).cast(nw.Int64).sum()
    if kind == "n_distinct":
        kept = value if condition is None else nw.when(condition).then(value)
        # n_unique counts null as one more value on every backend.
        return kept.n_unique() - kept.is_null().any().cast(nw.Int64)
    kept = value if condition is None else nw.when(condition).then(value)
    return getattr(kept, kind)()


def _combine_expr(feature: Aggregate, names: dict[Partial, str]) -> nw.Expr:
    """Stage 2: the feature from its partials, keeping the rows of its event names."""
    cond = None if feature.where.events is None else events_expr(feature.where.events)

    def part(kind: str) -> nw.Expr:
        (partial,) = [p for p in _partials(feature) if p[0] == kind]
        column = nw.col(names[partial])
        return column if cond is None else nw.when(cond).then(column)

    if feature.kind in ("count", "sum", "n_distinct"):
        return part(_PARTIAL_OF[feature.kind][0]).sum()
    if feature.kind == "any":
        return (part("count").sum() > 0).cast(nw.Int64)
    if feature.kind in ("min", "max"):
        return getattr(part(feature.kind), feature.kind)()
    total, count = part("sum").sum(), part("non_null").sum()
    return nw.when(count > 0).then(total / count)


def _reads_narrow(feature: Aggregate) -> bool:
    """Session aggregates and distinct counts over several event names read the narrow rows."""
    reads = {feature.column, feature.where.flag} | {r.column for r in feature.where.ranges}
    if not reads & SESSION_COLUMNS and _decomposable(feature):
        return False
    if not reads - {None} <= NARROW_COLUMNS or feature.where.events is not None:
        raise ValueError(f"{feature.name}: cannot be computed from {sorted(NARROW_COLUMNS)}")
    return True


def _per_visitor(rows: nw.LazyFrame[Any], aggregates: list[Aggregate]) -> nw.LazyFrame[Any]:
    return rows.group_by("visitor_id").agg(
        row_aggregate_expr(f.kind, f.column, filter_expr(f.where)).alias(f.name) for f in aggregates
    )


def aggregate_features(
    rows: nw.LazyFrame[Any], session_rows: nw.LazyFrame[Any], aggregates: list[Aggregate]
) -> nw.LazyFrame[Any]:
    """One row per visitor with every aggregate of ``aggregates`` (named by feature).

    ``rows`` and ``session_rows`` come from ``features.rows``. Aggregates that cannot be
    split by event name read the narrow ``session_rows`` in one stage, so that the wide
    ``rows`` have a single consumer and stream; the rest go through the two stages above.
    """
    narrow = [f for f in aggregates if _reads_narrow(f)]
    split = [f for f in aggregates if f not in narrow]
    names: dict[Partial, str] = {}
    for feature in split:
        for partial in _partials(feature):
            names.setdefault(partial, f"_p{len(names)}")
    partials = rows.group_by("visitor_id", "event_name").agg(
        row_aggregate_expr(kind, column, filter_expr(RowFilter(None, ranges, flag))).alias(name)
        for (kind, column, ranges, flag), name in names.items()
    )
    features = partials.group_by("visitor_id").agg(
        _combine_expr(f, names).alias(f.name) for f in split
    )
    if narrow:
        features = features.join(_per_visitor(session_rows, narrow), on="visitor_id", how="inner")
    return features


def derived_expr(feature: Derived) -> nw.Expr:
    numerator = nw.col(feature.numerator).cast(nw.Float64)
    if feature.op == "scale":
        return numerator * feature.factor
    if feature.denominator is None:
        raise ValueError(f"{feature.name}: ratio needs a denominator")
    denominator = nw.col(feature.denominator)
    return nw.when(denominator > 0).then(numerator / denominator * feature.factor)


def _output_expr(feature: Feature) -> nw.Expr:
    return nw.col(feature.name).cast(nw.Int64 if feature.dtype == "int" else nw.Float64)


def compute_features(
    events: nw.LazyFrame[Any], as_of: datetime, config: FeatureConfig
) -> nw.LazyFrame[Any]:
    """Features of every visitor active in the lookback before ``as_of``.

    ``events``: canonical events plus ``event_us`` (see ``features.engines``), any backend.
    """
    aggregates = [f for f in FEATURES if isinstance(f, Aggregate)]
    derived = [f for f in FEATURES if isinstance(f, Derived)]
    features = aggregate_features(
        build_rows(events, as_of, config), build_session_rows(events, as_of, config), aggregates
    )
    # Derived features read only aggregates, so one pass computes them all.
    assert all(d.numerator not in {x.name for x in derived} for d in derived)
    features = features.with_columns(*(derived_expr(f).alias(f.name) for f in derived))
    return features.select(
        "visitor_id",
        nw.lit(as_of).alias("as_of"),
        *(_output_expr(f) for f in PUBLIC_FEATURES),
    )


def build_features(
    events_source: EventsSource,
    as_of: datetime,
    *,
    engine: Engine = "polars",
    config: FeatureConfig | None = None,
    spark: SparkSession | None = None,
) -> pl.LazyFrame | SparkDataFrame:
    """Features as of ``as_of`` from a lake directory or an events frame, on ``engine``.

    Returns the engine's native lazy frame (nothing is computed yet); ``write_features``
    runs it. For ``engine="spark"`` without ``spark``, a local session is started.
    """
    config = config or FeatureConfig()
    events = load_events(
        events_source, engine=engine, start=config.window_start(as_of), end=as_of, spark=spark
    )
    native: pl.LazyFrame | SparkDataFrame = compute_features(events, as_of, config).to_native()
    return native


def collect(frame: pl.LazyFrame | SparkDataFrame) -> pl.DataFrame:
    """Run a frame from ``build_features``/``build_snapshots`` into a Polars DataFrame."""
    if isinstance(frame, pl.LazyFrame):
        return frame.collect(engine="streaming")
    return nw.from_native(frame).collect(backend="polars").to_native()


def write_features(frame: pl.LazyFrame | SparkDataFrame, path: Path) -> Path:
    """Run ``frame`` and write it as Parquet: one file (Polars) or a directory (Spark)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(frame, pl.LazyFrame):
        frame.sink_parquet(path, engine="streaming")
    else:
        frame.write.mode("overwrite").parquet(str(path))
    return path
