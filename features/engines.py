"""The engine edge: turn an events source into a narwhals LazyFrame on Polars or Spark.

Everything after this module is engine-agnostic narwhals. The one native step is
``event_us`` (event_time as Int64 microseconds since the epoch): narwhals 2.29 has no
``dt.timestamp``/``dt.total_*`` for Spark, and ``cast(Int64)`` means microseconds on Polars
but seconds on Spark, so each engine converts with its own exact function.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import narwhals as nw
import polars as pl

from features.lake import read_events_spark, scan_events

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

Engine: TypeAlias = Literal["polars", "spark"]
#: A lake directory, an in-memory Polars frame of canonical events, or a Spark DataFrame.
EventsSource: TypeAlias = "Path | str | pl.DataFrame | pl.LazyFrame | SparkDataFrame"


def spark_session(
    master: str = "local[2]", *, remote: str | None = None, conf: dict[str, str] | None = None
) -> SparkSession:
    """A Spark session: local mode or ``spark://`` via ``master``, Spark Connect via ``remote``.

    Session time zone is UTC so timestamps read and written by Spark mean the same instant.
    """
    from pyspark.sql import SparkSession

    builder: Any = SparkSession.builder.appName("propensity-features")
    builder = builder.remote(remote) if remote else builder.master(master)
    settings = {"spark.sql.session.timeZone": "UTC"}
    if not remote:
        settings["spark.ui.enabled"] = "false"
    if not remote and master.startswith("local"):
        # Local Python workers run this package's code (scoring in mapInPandas): the same
        # interpreter, not whichever python3 is first on PATH. PySpark reads PYSPARK_PYTHON
        # when the context starts (its conf key only counts for spark-submit); a value the
        # user set wins. On a cluster, the executors' Python is the cluster's to configure.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {**settings, **(conf or {})}.items():
        builder = builder.config(key, value)
    session: SparkSession = builder.getOrCreate()
    return session


def to_spark(spark: SparkSession, events: pl.DataFrame) -> SparkDataFrame:
    """A Spark DataFrame of a Polars frame, through Arrow (nulls and UTC instants preserved)."""
    return spark.createDataFrame(events.to_arrow())


def with_event_micros(events: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Add ``event_us`` (Int64 microseconds since the epoch) with the backend's own function."""
    native = events.to_native()
    if isinstance(native, pl.LazyFrame):
        return nw.from_native(native.with_columns(event_us=pl.col("event_time").dt.epoch("us")))
    if events.implementation.is_pyspark() or events.implementation.is_pyspark_connect():
        from pyspark.sql import functions as F

        return nw.from_native(native.withColumn("event_us", F.unix_micros("event_time")))
    raise TypeError(f"unsupported events backend {events.implementation}")


def load_events(
    source: EventsSource,
    *,
    engine: Engine,
    start: datetime | None = None,
    end: datetime | None = None,
    spark: SparkSession | None = None,
) -> nw.LazyFrame[Any]:
    """Canonical events with ``event_us`` on ``engine``; a lake is pruned to [start, end)."""
    if engine == "polars":
        native: Any = _polars_events(source, start, end)
    elif engine == "spark":
        native = _spark_events(source, start, end, spark or spark_session())
    else:
        raise ValueError(f"unknown engine {engine!r}; expected 'polars' or 'spark'")
    return with_event_micros(nw.from_native(native))


def _polars_events(
    source: EventsSource, start: datetime | None, end: datetime | None
) -> pl.LazyFrame:
    if isinstance(source, str | Path):
        return scan_events(Path(source), start=start, end=end)
    if isinstance(source, pl.DataFrame):
        return source.lazy()
    if isinstance(source, pl.LazyFrame):
        return source
    raise TypeError(f"engine 'polars' cannot read events from {type(source).__name__}")


def _spark_events(
    source: EventsSource, start: datetime | None, end: datetime | None, spark: SparkSession
) -> SparkDataFrame:
    if isinstance(source, str | Path):
        return read_events_spark(spark, Path(source), start=start, end=end)
    if isinstance(source, pl.LazyFrame):
        source = source.collect()
    if isinstance(source, pl.DataFrame):
        return to_spark(spark, source)
    return source
