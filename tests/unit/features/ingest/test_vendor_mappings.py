"""The built-in vendor mappings on small files written for these tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from features.ingest.mapping import builtin_mapping
from features.ingest.pipeline import IngestReport, ingest_file
from features.ingest.validate import ValidationLimits
from tests.conftest import FIXTURES


def _ingest(
    name: str, fixture: str, tmp_path: Path, limits: ValidationLimits
) -> tuple[IngestReport, pl.DataFrame]:
    report = ingest_file(
        FIXTURES / fixture,
        mapping=builtin_mapping(name),
        lake_dir=tmp_path / "lake",
        quarantine_dir=tmp_path / "q",
        limits=limits,
        batch_rows=100,
        ingest_id="t",
    )
    lake = pl.read_parquet(tmp_path / "lake" / "events" / "**" / "*.parquet")
    return report, lake.sort("event_time", "item_id")


def test_retailrocket(tmp_path: Path, limits: ValidationLimits) -> None:
    report, lake = _ingest("retailrocket", "retailrocket_events.csv", tmp_path, limits)
    assert (report.rows_read, report.accepted) == (8, 6)
    assert report.quarantined == {"unknown_event_name": 1, "missing_visitor": 1}
    purchases = lake.filter(pl.col("event_name") == "purchase")
    assert purchases.get_column("transaction_id").to_list() == ["4000", "4000"]
    assert str(lake.get_column("event_time")[0]) == "2015-06-02 05:02:12.117000+00:00"


def test_taobao(tmp_path: Path, limits: ValidationLimits) -> None:
    report, lake = _ingest("taobao", "taobao_sample.csv", tmp_path, limits)
    assert (report.rows_read, report.accepted, report.duplicates) == (7, 6, 1)
    assert lake.get_column("event_name").value_counts().sort("event_name").rows() == [
        ("add_to_cart", 1),
        ("add_to_wishlist", 1),
        ("purchase", 2),
        ("view_item", 2),
    ]
    orders = lake.filter(pl.col("event_name") == "purchase").get_column("transaction_id")
    assert orders.n_unique() == 1  # two items bought in the same second: one order
    assert lake.get_column("user_id").to_list() == lake.get_column("visitor_id").to_list()


def test_rees46(tmp_path: Path, limits: ValidationLimits) -> None:
    report, lake = _ingest("rees46", "rees46_sample.csv", tmp_path, limits)
    assert report.accepted == 4
    assert report.quarantined == {"negative_price": 1}
    assert lake.get_column("event_name").to_list() == [
        "view_item",
        "add_to_cart",
        "remove_from_cart",
        "purchase",
    ]
    assert lake.get_column("session_id").unique().to_list() == [
        "72d76fde-8bb3-4e00-8c23-a032dfed738c"
    ]
    purchase = lake.filter(pl.col("event_name") == "purchase").row(0, named=True)
    assert (purchase["quantity"], purchase["revenue"]) == (1, 33.2)
    assert purchase["transaction_id"] is not None
