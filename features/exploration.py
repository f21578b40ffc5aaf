"""Describing an event log before modelling it: funnel, activity, returning visitors, timing.

Pure Polars over canonical events (``features.events.schema``; one row per event and item).
Days are UTC calendar days of ``event_time``. Used by ``notebooks/01_explore_events.ipynb``.
"""

from __future__ import annotations

from itertools import pairwise

import polars as pl

from features.events.schema import EventName

#: Gaps (days since the visitor's previous active day) at which purchase timing is binned.
TIMING_BINS: tuple[int, ...] = (0, 1, 3, 7, 14, 30)


def _lazy(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return events.lazy() if isinstance(events, pl.DataFrame) else events


def event_funnel(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per event name in funnel order: ``events``, ``visitors`` with at least one,
    and ``visitor_share`` of all visitors in the log."""
    frame = _lazy(events)
    total = frame.select(pl.col("visitor_id").n_unique()).collect().item()
    order = pl.Enum([e.value for e in EventName])
    return (
        frame.group_by("event_name")
        .agg(events=pl.len(), visitors=pl.col("visitor_id").n_unique())
        .with_columns(
            pl.col("event_name").cast(order), visitor_share=pl.col("visitors") / max(total, 1)
        )
        .sort("event_name")
        .collect()
    )


def visitor_activity(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per visitor: ``events``, ``active_days``, ``first_seen``, ``last_seen``,
    ``orders`` (distinct purchase transactions; a purchase without one counts once)."""
    purchase = pl.col("event_name") == EventName.PURCHASE.value
    return (
        _lazy(events)
        .group_by("visitor_id")
        .agg(
            events=pl.len(),
            active_days=pl.col("event_time").dt.date().n_unique(),
            first_seen=pl.col("event_time").min(),
            last_seen=pl.col("event_time").max(),
            orders=pl.col("transaction_id").filter(purchase).n_unique(),
        )
        .sort("visitor_id")
        .collect()
    )


def returning_visitors(activity: pl.DataFrame) -> pl.DataFrame:
    """From ``visitor_activity``: visitors by number of active days (1 = never came back),
    with their share and the share of them who ordered."""
    return (
        activity.group_by("active_days")
        .agg(visitors=pl.len(), buyer_share=(pl.col("orders") > 0).mean())
        .with_columns(visitor_share=pl.col("visitors") / pl.col("visitors").sum())
        .sort("active_days")
    )


def purchase_timing(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per purchase day of a visitor: ``days_since_previous_visit`` = days between
    that day and the visitor's previous active day (null: the first day they were seen),
    and ``gap`` as a label binned at ``TIMING_BINS``."""
    days = (
        _lazy(events)
        .group_by("visitor_id", pl.col("event_time").dt.date().alias("day"))
        .agg(bought=(pl.col("event_name") == EventName.PURCHASE.value).any())
        .sort("visitor_id", "day")
        .with_columns(previous=pl.col("day").shift(1).over("visitor_id"))
        .filter(pl.col("bought"))
        .with_columns(
            days_since_previous_visit=(pl.col("day") - pl.col("previous")).dt.total_days()
        )
    )
    first = "first day seen"
    bins = _bin_labels()
    gap = (
        pl.col("days_since_previous_visit")
        .bin_intervals(list(TIMING_BINS[1:]), labels=bins, right_closed=True)
        .cast(pl.String)
        .fill_null(first)
    )
    return (
        days.select("visitor_id", "day", "days_since_previous_visit")
        .with_columns(gap=gap.cast(pl.Enum([first, *bins])))
        .collect()
    )


def _bin_labels() -> list[str]:
    edges = TIMING_BINS
    ranges = [f"{lo + 1}-{hi} days" if hi > lo + 1 else f"{hi} day" for lo, hi in pairwise(edges)]
    return [*ranges, f"over {edges[-1]} days"]
