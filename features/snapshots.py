"""Labelled training snapshots, in the spirit of Google's ML Windowing Pipeline.

For each snapshot time T in ``cuts`` when they are stated, else in
``start, start + slide, ... <= end`` (absolute time):

- features as of ``T - lookback_gap`` over the ``lookback`` before it (``features.batch``;
  a ``None`` lookback reads every event before it: full history, no anchor event needed);
- population: visitors with at least ``min_events`` event rows in that lookback, minus, when
  ``exclude_purchased_within`` is set, visitors with a purchase row in
  ``[T - exclude_purchased_within, T)``;
- label: a counted order in ``[T + prediction_gap, T + prediction_gap + horizon)``
  (``features.labels``; fully refunded orders do not count).

Output grain: one row per (visitor_id, as_of) with ``as_of`` = T, ``FEATURE_COLUMNS`` and
``label`` (Int64 0/1). Row order is unspecified.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import narwhals as nw
import polars as pl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from features.batch import compute_features
from features.definitions import (
    FEATURE_COLUMNS,
    FeatureConfig,
    full_history_as_none,
    spell_full_history,
)
from features.engines import Engine, EventsSource, load_events
from features.events.schema import EventName
from features.labels import build_labels
from features.rows import micros, to_micros

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

SNAPSHOT_COLUMNS: tuple[str, ...] = ("visitor_id", "as_of", *FEATURE_COLUMNS, "label")


class SnapshotConfig(BaseModel):
    """Snapshot dates, windows and population rules."""

    model_config = ConfigDict(frozen=True)

    start: datetime = Field(description="first snapshot time (timezone-aware)")
    end: datetime = Field(description="last possible snapshot time (inclusive)")
    slide: timedelta = Field(timedelta(days=7), gt=timedelta(0))
    lookback: timedelta | None = Field(
        timedelta(days=30), gt=timedelta(0), description='None ("all"): full history'
    )
    lookback_gap: timedelta = Field(timedelta(0), ge=timedelta(0))
    prediction_gap: timedelta = Field(timedelta(0), ge=timedelta(0))
    horizon: timedelta = Field(timedelta(days=14), gt=timedelta(0))
    exclude_purchased_within: timedelta | None = Field(
        None, description="drop visitors who purchased in [T - this, T); None keeps them"
    )
    min_events: int = Field(1, ge=1, description="event rows in the lookback to be included")
    session_timeout: timedelta = Field(timedelta(minutes=30), gt=timedelta(0))
    local_time_offset: timedelta = timedelta(0)
    cuts: tuple[datetime, ...] | None = Field(
        None, description="stated snapshot times (aware; oldest first); None: start/slide/end"
    )
    timezone: str = Field("UTC", description="the shop's IANA zone the cuts were stated in")

    _full_history = field_validator("lookback", mode="before")(full_history_as_none)
    _spell_full_history = field_serializer("lookback", mode="wrap", when_used="json")(
        spell_full_history
    )

    @model_validator(mode="after")
    def _check_times(self) -> SnapshotConfig:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.cuts is not None:
            if not self.cuts or any(c.tzinfo is None for c in self.cuts):
                raise ValueError("cuts must be timezone-aware, and one at least")
            if list(self.cuts) != sorted(set(self.cuts)):
                raise ValueError("cuts must be distinct and oldest first")
        return self

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(
            lookback=self.lookback,
            session_timeout=self.session_timeout,
            local_time_offset=self.local_time_offset,
        )

    def snapshot_times(self) -> list[datetime]:
        """Snapshot times in UTC: the stated cuts, or ``start`` and every ``slide`` after it."""
        if self.cuts is not None:
            return [c.astimezone(UTC) for c in self.cuts]
        # In UTC, so that the slide is absolute time whatever zone ``start`` was given in.
        times, moment = [], self.start.astimezone(UTC)
        while moment <= self.end:
            times.append(moment)
            moment += self.slide
        return times

    def events_needed(self) -> tuple[datetime | None, datetime]:
        """``[first, last)``: every event time any snapshot reads (first None: every event
        before the last, for a full-history lookback)."""
        times = self.snapshot_times()
        label_end = self.prediction_gap + self.horizon
        if self.lookback is None:
            return None, times[-1] + label_end
        reach_back = max(
            self.lookback + self.lookback_gap, self.exclude_purchased_within or timedelta(0)
        )
        return times[0] - reach_back, times[-1] + label_end


def snapshot(
    events: nw.LazyFrame[Any], moment: datetime, config: SnapshotConfig
) -> nw.LazyFrame[Any]:
    """The labelled population at one snapshot time ``moment`` (see module docstring)."""
    features = compute_features(events, moment - config.lookback_gap, config.feature_config)
    population = features.filter(nw.col("n_events") >= config.min_events)
    if config.exclude_purchased_within is not None:
        since = to_micros(moment) - micros(config.exclude_purchased_within)
        recent_buyers = (
            events.filter(
                (nw.col("event_name") == EventName.PURCHASE.value)
                & (nw.col("event_us") >= since)
                & (nw.col("event_us") < to_micros(moment))
            )
            .select("visitor_id")
            .unique()
        )
        population = population.join(recent_buyers, on="visitor_id", how="anti")
    labels = build_labels(events, moment, gap=config.prediction_gap, horizon=config.horizon)
    return (
        population.join(labels, on="visitor_id", how="left")
        .with_columns(nw.lit(moment).alias("as_of"), nw.col("label").fill_null(0).cast(nw.Int64))
        .select(SNAPSHOT_COLUMNS)
    )


def build_snapshots(
    events_source: EventsSource,
    config: SnapshotConfig,
    *,
    engine: Engine = "polars",
    spark: SparkSession | None = None,
) -> pl.LazyFrame | SparkDataFrame:
    """All snapshots of ``config`` stacked (``SNAPSHOT_COLUMNS``), as the engine's lazy frame."""
    first, last = config.events_needed()
    events = load_events(events_source, engine=engine, start=first, end=last, spark=spark)
    frames = [snapshot(events, moment, config) for moment in config.snapshot_times()]
    native: pl.LazyFrame | SparkDataFrame = nw.concat(frames, how="vertical").to_native()
    return native
