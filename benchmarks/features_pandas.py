"""The baseline of ``benchmarks.features``: the same features written as idiomatic pandas.

A reference implementation a data scientist would write (groupby/unstack/merge), kept to
the semantics documented in ``features.definitions`` so that the benchmark can check that
both produce the same numbers. Not used by the product.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features.definitions import (
    ACTIVITY_EVENTS,
    BUCKETS,
    DAYPARTS,
    FEATURE_COLUMNS,
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    MICROS_PER_MINUTE,
)
from features.events.schema import EVENT_COLUMNS

COLUMNS = [c for c in EVENT_COLUMNS if c != "source"]


def read_window(lake_dir: Path, as_of: datetime, lookback: timedelta) -> pd.DataFrame:
    start = as_of - lookback
    events = pd.read_parquet(
        lake_dir / "events",
        columns=COLUMNS,
        filters=[
            ("event_date", ">=", start.date().isoformat()),
            ("event_date", "<=", as_of.date().isoformat()),
        ],
    )
    return events[(events["event_time"] >= start) & (events["event_time"] < as_of)]


def add_row_columns(events: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    us = events["event_time"].astype("int64")
    events = events.assign(
        event_us=us,
        offset_us=us - int(as_of.timestamp() * 1_000_000),
        sid=events["session_id"].fillna(""),
        item=events["item_id"].fillna(""),
        line_value=events["price"] * events["quantity"].fillna(1),
        hour=(us // MICROS_PER_HOUR) % 24,
        day=us // MICROS_PER_DAY,
    ).sort_values(["visitor_id", "event_us", "sid"])
    by_visitor = events.groupby("visitor_id", sort=False)
    prev_us, prev_sid = by_visitor["event_us"].shift(), by_visitor["sid"].shift()
    gap = events["event_us"] - prev_us
    sid = events["sid"]
    same = (
        prev_us.notna()
        & (gap <= 30 * MICROS_PER_MINUTE)
        & ((sid == "") | (prev_sid == "") | (sid == prev_sid))
    )
    last_buy = (
        events[events["event_name"] == "purchase"]
        .groupby(["visitor_id", "item"])["event_us"]
        .max()
        .rename("last_buy")
    )
    events = events.join(last_buy, on=["visitor_id", "item"])
    return events.assign(
        session_start=~same,
        session_gap_us=gap.where(same, 0),
        abandoned=events["last_buy"].isna() | (events["last_buy"] < events["event_us"]),
        weekend=((events["day"] + 3) % 7) >= 5,
        daypart=pd.cut(events["hour"], [0, 6, 12, 18, 24], right=False, labels=list(DAYPARTS)),
        bucket=pd.cut(
            -events["offset_us"],
            [0, *(b[0] * MICROS_PER_DAY for b in BUCKETS.values())],
            labels=list(BUCKETS),
        ),
    )


def activity(events: pd.DataFrame) -> pd.DataFrame:
    sizes = events.groupby(["visitor_id", "event_name", "bucket"], observed=True).size()
    counts = sizes.unstack(["event_name", "bucket"], fill_value=0)
    counts.columns = ["n_{}_{}".format(*pair) for pair in counts.columns.to_list()]
    last = events.groupby(["visitor_id", "event_name"])["offset_us"].max().unstack()
    recency = -last / MICROS_PER_DAY
    recency.columns = [f"days_since_last_{e}" for e in recency.columns]
    return counts.join(recency)


def per_visitor(events: pd.DataFrame) -> pd.DataFrame:
    overall = events.groupby("visitor_id").agg(
        n_events=("event_us", "size"),
        last=("offset_us", "max"),
        first=("offset_us", "min"),
        n_sessions=("session_start", "sum"),
        session_time=("session_gap_us", "sum"),
        n_active_days=("day", "nunique"),
        logged_in=("user_id", "count"),
        n_weekend=("weekend", "sum"),
    )
    dayparts = events.groupby(["visitor_id", "daypart"], observed=False).size().unstack()
    return overall.join(dayparts.add_prefix("n_"))


def intent_and_history(events: pd.DataFrame) -> pd.DataFrame:
    name = events["event_name"]
    abandoned = events[events["abandoned"]]
    carts = (
        abandoned[abandoned["event_name"] == "add_to_cart"]
        .groupby("visitor_id")
        .agg(n_carts_abandoned=("event_us", "size"), value_carts_abandoned=("line_value", "sum"))
    )
    checkouts = (
        abandoned[abandoned["event_name"] == "begin_checkout"]
        .groupby("visitor_id")
        .size()
        .rename("n_checkouts_abandoned")
    )
    views = (
        events[name == "view_item"]
        .groupby("visitor_id")
        .agg(
            n_items_viewed=("item_id", "nunique"),
            n_categories_viewed=("item_category", "nunique"),
            mean_price_viewed=("price", "mean"),
            max_price_viewed=("price", "max"),
        )
    )
    carted = events[name == "add_to_cart"].groupby("visitor_id")["item_id"].nunique()
    orders = (
        events[name == "purchase"]
        .groupby("visitor_id")
        .agg(n_orders=("transaction_id", "nunique"), revenue=("revenue", "sum"))
    )
    refunds = (
        events[name == "refund"]
        .groupby("visitor_id")
        .agg(n_refunds=("transaction_id", "nunique"), refund_amount=("revenue", "sum"))
    )
    recent = events[events["offset_us"] >= -7 * MICROS_PER_DAY]
    windows = pd.DataFrame(
        {
            "n_1d": recent[recent["offset_us"] >= -MICROS_PER_DAY].groupby("visitor_id").size(),
            "n_7d": recent.groupby("visitor_id").size(),
        }
    )
    return carts.join(
        [checkouts, views, carted.rename("n_items_carted"), orders, refunds, windows], how="outer"
    )


def pandas_features(lake_dir: Path, as_of: datetime) -> pd.DataFrame:
    """Visitor features as of ``as_of`` (default FeatureConfig), columns ``FEATURE_COLUMNS``."""
    events = add_row_columns(read_window(lake_dir, as_of, timedelta(days=30)), as_of)
    parts = per_visitor(events).join([activity(events), intent_and_history(events)])
    n = parts["n_events"]
    sessions = parts["n_sessions"]
    derived = pd.DataFrame(
        {
            "days_since_last_event": -parts["last"] / MICROS_PER_DAY,
            "days_since_first_event": -parts["first"] / MICROS_PER_DAY,
            "mean_events_per_session": n / sessions,
            "mean_session_minutes": parts["session_time"] / sessions / MICROS_PER_MINUTE,
            "share_events_1d": parts["n_1d"].fillna(0) / n,
            "share_events_7d": parts["n_7d"].fillna(0) / n,
            "avg_order_value": (parts["revenue"] / parts["n_orders"]).where(parts["n_orders"] > 0),
            "logged_in": (parts["logged_in"] > 0).astype("int64"),
            "share_events_weekend": parts["n_weekend"] / n,
            **{f"share_events_{p}": parts[f"n_{p}"] / n for p in DAYPARTS},
        }
    )
    features = parts.drop(columns=[c for c in derived if c in parts]).join(derived)
    features = features.reindex(columns=list(FEATURE_COLUMNS))
    counts = [
        c
        for c in FEATURE_COLUMNS
        if c.startswith("n_") or c in ("revenue", "refund_amount", "value_carts_abandoned")
    ]
    features[counts] = features[counts].fillna(0)
    for event in ACTIVITY_EVENTS:  # events nobody did in the window
        features[f"days_since_last_{event}"] = features[f"days_since_last_{event}"].astype(
            np.float64
        )
    return features.reset_index()
