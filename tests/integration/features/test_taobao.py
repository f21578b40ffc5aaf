"""Snapshots and labels on the real Taobao UserBehavior extract (814 users, 9 days).

Needs ``$PROPENSITY_SHARED_DATA/taobao_userbehavior/UserBehavior_head_814users.csv.gz``;
skipped when it is absent. The file is converted here with a few lines of Polars (pv ->
view_item, cart -> add_to_cart, fav -> add_to_wishlist, buy -> purchase; the items a visitor
buys in the same second form one order), independent of the ingest readers.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from features.batch import collect
from features.events.schema import conform_events
from features.snapshots import SnapshotConfig, build_snapshots

pytestmark = pytest.mark.shared_data
TAOBAO = Path("taobao_userbehavior") / "UserBehavior_head_814users.csv.gz"
BEHAVIOURS = {"pv": "view_item", "cart": "add_to_cart", "fav": "add_to_wishlist", "buy": "purchase"}


@pytest.fixture(scope="module")
def taobao_events() -> pl.DataFrame:
    shared = os.environ.get("PROPENSITY_SHARED_DATA")
    if not shared or not (Path(shared) / TAOBAO).is_file():
        pytest.skip(f"set PROPENSITY_SHARED_DATA to the folder holding {TAOBAO}")
    raw = pl.read_csv(
        Path(shared) / TAOBAO,
        schema_overrides={"user_id": pl.String, "item_id": pl.String, "category_id": pl.String},
    )
    user = pl.col("user_id")
    return conform_events(
        raw.select(
            visitor_id=user,
            event_time=pl.from_epoch("timestamp", time_unit="s").dt.replace_time_zone("UTC"),
            event_name=pl.col("behavior_type").replace_strict(BEHAVIOURS),
            item_id="item_id",
            item_category="category_id",
            transaction_id=pl.when(pl.col("behavior_type") == "buy").then(
                pl.concat_str(user, pl.col("timestamp").cast(pl.String), separator="-")
            ),
            user_id=user,
            source=pl.lit("taobao"),
        )
    )


def test_taobao_snapshots_are_sane(taobao_events: pl.DataFrame) -> None:
    config = SnapshotConfig(
        start=datetime(2017, 11, 27, tzinfo=UTC),
        end=datetime(2017, 12, 1, tzinfo=UTC),
        slide=timedelta(days=1),
        lookback=timedelta(days=7),
        horizon=timedelta(days=2),
        local_time_offset=timedelta(hours=8),  # Taobao is in China time
    )
    snapshots = collect(build_snapshots(taobao_events, config))
    summary = (
        snapshots.group_by("as_of")
        .agg(
            population=pl.len(),
            positives=pl.col("label").sum(),
            positive_rate=pl.col("label").mean(),
        )
        .sort("as_of")
    )
    print(summary)  # the numbers reported in the issue (run with -s)

    assert summary["as_of"].to_list() == config.snapshot_times()
    assert summary["population"].min() > 500  # of 814 users, most are active weekly
    assert 0.02 < summary["positive_rate"].min() <= summary["positive_rate"].max() < 0.5
    assert snapshots.select(pl.struct("visitor_id", "as_of").is_unique().all()).item()
    assert (snapshots["n_events"] >= 1).all()
    assert snapshots["n_page_view_1d"].sum() == 0  # Taobao has no page_view
    assert snapshots["logged_in"].min() == 1
    assert (snapshots["n_sessions"] >= 1).all()
    # A label needs a purchase in [T, T + 2d): check one snapshot against the raw events.
    t0 = config.start
    buyers = set(
        taobao_events.filter(
            (pl.col("event_name") == "purchase")
            & (pl.col("event_time") >= t0)
            & (pl.col("event_time") < t0 + config.horizon)
        )["visitor_id"]
    )
    first = snapshots.filter(as_of=t0)
    assert set(first.filter(label=1)["visitor_id"]) == buyers & set(first["visitor_id"])
