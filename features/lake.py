"""Read the event lake: ``<lake>/events/event_date=YYYY-MM-DD/*.parquet``.

The files hold the canonical ``EVENT_SCHEMA`` columns; ``event_date`` (the UTC date of
``event_time``) exists only in the path. Readers return the canonical columns and, given a
``[start, end)`` range, skip partitions outside it before reading any file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from features.events.schema import EVENT_COLUMNS, EVENT_SCHEMA, PARTITION_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

EVENTS_DIR = "events"


def _utc_date(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def events_dir(lake_dir: Path) -> Path:
    return lake_dir / EVENTS_DIR


def scan_events(
    lake_dir: Path, *, start: datetime | None = None, end: datetime | None = None
) -> pl.LazyFrame:
    """A lazy scan of the lake's events with ``start <= event_time < end`` (bounds optional)."""
    root = events_dir(lake_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no event lake at {root}")
    events = pl.scan_parquet(
        root / "**" / "*.parquet",
        hive_partitioning=True,
        hive_schema={PARTITION_COLUMN: pl.Date()},
        schema=EVENT_SCHEMA,
        missing_columns="insert",
    )
    day = pl.col(PARTITION_COLUMN)
    if start is not None:
        events = events.filter((day >= _utc_date(start)) & (pl.col("event_time") >= start))
    if end is not None:
        events = events.filter((day <= _utc_date(end)) & (pl.col("event_time") < end))
    return events.select(EVENT_COLUMNS)


def visitors_before(lake_dir: Path, end: datetime) -> int:
    """Distinct visitors with an event before ``end``: who a run as of ``end`` could know."""
    return int(
        scan_events(lake_dir, end=end).select(pl.col("visitor_id").n_unique()).collect().item()
    )


def read_events_spark(
    spark: SparkSession,
    lake_dir: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> SparkDataFrame:
    """The Spark twin of ``scan_events`` (the session should use the UTC time zone)."""
    from pyspark.sql import functions as F

    root = events_dir(lake_dir)
    events = spark.read.option("basePath", str(root)).parquet(str(root))
    day = F.col(PARTITION_COLUMN)
    if start is not None:
        events = events.where((day >= F.lit(_utc_date(start))) & (F.col("event_time") >= start))
    if end is not None:
        events = events.where((day <= F.lit(_utc_date(end))) & (F.col("event_time") < end))
    return events.select(*EVENT_COLUMNS)
