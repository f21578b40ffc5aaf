"""Snapshots, labels, population rules and the event lake reader, on tiny hand-made events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from features.batch import build_features, collect, write_features
from features.ingest.lake_writer import write_partitions
from features.lake import scan_events
from features.snapshots import SNAPSHOT_COLUMNS, SnapshotConfig, build_snapshots
from features.testing import to_frame

T = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _event(visitor: str, at: timedelta, name: str = "page_view", **fields: Any) -> dict[str, Any]:
    return {"visitor_id": visitor, "event_time": T + at, "event_name": name, **fields}


def _snapshot(rows: list[dict[str, Any]], **config: Any) -> pl.DataFrame:
    settings = SnapshotConfig(start=T, end=T, horizon=3 * DAY, **config)
    return collect(build_snapshots(to_frame(rows), settings)).sort("visitor_id")


def _labels(rows: list[dict[str, Any]], **config: Any) -> dict[str, int]:
    frame = _snapshot(rows, **config)
    return dict(zip(frame["visitor_id"], frame["label"], strict=True))


def test_label_window_is_closed_at_start_and_open_at_end() -> None:
    """``[T, T + h)``: an order stamped at the cut is a label (features read only before T),
    one stamped at ``T + h`` belongs to the next window."""
    rows = [_event(v, -DAY) for v in ("at_t", "at_end", "before_end", "inside")]
    rows += [
        _event("at_t", timedelta(0), "purchase", transaction_id="a"),
        _event("at_end", 3 * DAY, "purchase", transaction_id="b"),
        _event("before_end", 3 * DAY - timedelta(microseconds=1), "purchase", transaction_id="c"),
        _event("inside", DAY, "purchase"),  # no transaction_id still counts
    ]
    assert _labels(rows) == {"at_end": 0, "at_t": 1, "before_end": 1, "inside": 1}


def test_fully_refunded_orders_do_not_count_partial_refunds_do() -> None:
    rows = [_event(v, -DAY) for v in ("full", "partial", "refund_later")]
    for visitor, refund in (("full", 20.0), ("partial", 5.0)):
        rows += [
            _event(visitor, DAY, "purchase", transaction_id="t", revenue=20.0),
            _event(visitor, 2 * DAY, "refund", transaction_id="t", revenue=refund),
        ]
    rows += [
        _event("refund_later", DAY, "purchase", transaction_id="t", revenue=20.0),
        _event("refund_later", 5 * DAY, "refund", transaction_id="t", revenue=20.0),
    ]
    assert _labels(rows) == {"full": 0, "partial": 1, "refund_later": 1}


def test_prediction_gap_shifts_the_label_window() -> None:
    rows = [_event("v", -DAY), _event("v", DAY, "purchase", transaction_id="t")]
    assert _labels(rows) == {"v": 1}
    assert _labels(rows, prediction_gap=DAY) == {"v": 1}  # [T + gap, ...): at its start
    assert _labels(rows, prediction_gap=2 * DAY) == {"v": 0}


def test_population_rules() -> None:
    rows = [
        _event("one_event", -DAY),
        _event("busy", -DAY),
        _event("busy", -2 * DAY),
        _event("buyer", -DAY),
        _event("buyer", -2 * DAY, "purchase", transaction_id="t"),
        _event("stale", -40 * DAY),
        _event("stale", -40 * DAY),
    ]
    assert set(_labels(rows)) == {"one_event", "busy", "buyer"}
    assert set(_labels(rows, min_events=2)) == {"busy", "buyer"}
    assert set(_labels(rows, exclude_purchased_within=3 * DAY)) == {"one_event", "busy"}
    assert set(_labels(rows, exclude_purchased_within=DAY)) == {"one_event", "busy", "buyer"}


def test_lookback_gap_moves_the_feature_window_but_not_as_of() -> None:
    rows = [_event("v", -timedelta(hours=1)), _event("v", -3 * DAY)]
    frame = _snapshot(rows, lookback_gap=DAY)
    assert frame["as_of"].to_list() == [T]
    assert frame["n_events"].to_list() == [1]
    assert frame["days_since_last_event"].to_list() == [pytest.approx(2.0)]


def test_snapshot_times_and_columns() -> None:
    config = SnapshotConfig(start=T, end=T + 15 * DAY)
    assert config.snapshot_times() == [T, T + 7 * DAY, T + 14 * DAY]
    rows = [_event("v", d * DAY) for d in range(-3, 16)]
    frame = collect(build_snapshots(to_frame(rows), config))
    assert tuple(frame.columns) == SNAPSHOT_COLUMNS
    assert frame.sort("as_of")["as_of"].to_list() == config.snapshot_times()
    assert frame.schema["label"] == pl.Int64


def test_naive_times_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SnapshotConfig(start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))


def test_lake_scan_prunes_by_date_and_features_read_the_lake(tmp_path: Path) -> None:
    rows = [_event("v", d * DAY + timedelta(hours=h)) for d in range(-40, 3) for h in (1, 23)]
    events = to_frame(rows)
    write_partitions(events, tmp_path, "test")
    start, end = T - 2 * DAY + timedelta(hours=12), T
    scanned = scan_events(tmp_path, start=start, end=end).collect()
    assert scanned.columns == events.columns
    assert scanned["event_time"].to_list() == [
        T - 2 * DAY + timedelta(hours=23),
        T - DAY + timedelta(hours=1),
        T - DAY + timedelta(hours=23),
    ]
    plan = scan_events(tmp_path, start=start, end=end).explain()
    assert "event_date=2024-02-28" in plan  # only the partitions in range are read
    assert "event_date=2024-02-27" not in plan
    from_lake = collect(build_features(tmp_path, T))
    from_memory = collect(build_features(events, T))
    assert from_lake.equals(from_memory)
    out = write_features(build_features(tmp_path, T), tmp_path / "out" / "features.parquet")
    assert pl.read_parquet(out).equals(from_memory)


def test_sharded_writing_equals_the_single_plan(tmp_path: Path) -> None:
    from features.sharding import shards_for, write_features_sharded
    from features.testing import random_events

    events = to_frame(random_events(400, seed=11, visitors=30))
    whole = collect(build_features(events, T))
    for shards in (None, 3):
        out = write_features_sharded(events, T, tmp_path / f"out{shards}", shards=shards)
        sharded = pl.read_parquet(out / "*.parquet")
        assert sharded.sort("visitor_id").equals(whole.sort("visitor_id"))
    assert shards_for(10_000_000, events_per_shard=4_000_000) == 3
    assert shards_for(10) == 1
