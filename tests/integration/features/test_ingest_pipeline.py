"""The ingest pipeline end to end on files, into a real lake in tmp_path."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

from features.ingest.batch import IngestError
from features.ingest.lake_writer import EVENTS_DIR
from features.ingest.mapping import builtin_mapping
from features.ingest.pipeline import IngestReport, ingest_file
from features.ingest.validate import ValidationLimits
from tests.conftest import FIXTURES

BROKEN = FIXTURES / "broken_events.csv"


def _ingest(path: Path, tmp_path: Path, limits: ValidationLimits, ingest_id: str) -> IngestReport:
    return ingest_file(
        path,
        mapping=builtin_mapping("canonical"),
        lake_dir=tmp_path / "lake",
        quarantine_dir=tmp_path / "quarantine",
        limits=limits,
        batch_rows=4,
        ingest_id=ingest_id,
    )


def _lake(tmp_path: Path) -> pl.DataFrame:
    return pl.read_parquet(
        tmp_path / "lake" / EVENTS_DIR / "**" / "*.parquet", hive_partitioning=False
    )


def test_broken_file_quarantines_every_bad_row_with_its_reason(
    tmp_path: Path, limits: ValidationLimits
) -> None:
    report = _ingest(BROKEN, tmp_path, limits, "run1")

    assert report.rows_read == 18
    assert report.accepted == 6
    assert report.duplicates == 1
    assert report.quarantined == {
        "bad_price": 2,
        "unparseable_line": 2,
        "bad_timestamp": 1,
        "missing_timestamp": 1,
        "unknown_event_name": 1,
        "missing_visitor": 1,
        "negative_price": 1,
        "timestamp_in_future": 1,
        "bad_quantity": 1,
    }
    assert report.visitors == 2


def test_quarantine_file_keeps_line_reason_and_original_content(
    tmp_path: Path, limits: ValidationLimits
) -> None:
    report = _ingest(BROKEN, tmp_path, limits, "run1")
    assert report.quarantine_file is not None
    with Path(report.quarantine_file).open(newline="") as handle:
        rows = {int(row["line"]): row for row in csv.DictReader(handle)}

    assert {line: row["reason"] for line, row in rows.items()} == {
        7: "bad_timestamp",
        8: "missing_timestamp",
        9: "unknown_event_name",
        10: "missing_visitor",
        11: "negative_price",
        12: "bad_price",
        13: "timestamp_in_future",
        14: "unparseable_line",
        16: "bad_price",
        17: "bad_quantity",
        19: "unparseable_line",
    }
    assert rows[7]["detail"] == "event_time=not-a-time"
    assert '"event_name":"teleport"' in rows[9]["raw"]
    assert rows[14]["raw"].startswith("v3;2025-03-02T09:10:00")
    assert rows[19]["raw"] == "v5,2025-03-04T"


def test_no_good_row_is_lost(tmp_path: Path, limits: ValidationLimits) -> None:
    _ingest(BROKEN, tmp_path, limits, "run1")
    lake = _lake(tmp_path).sort("event_time")

    assert lake.get_column("event_name").to_list() == [
        "page_view",
        "view_item",
        "add_to_cart",
        "purchase",
        "page_view",
        "purchase",
    ]
    purchase = lake.filter(pl.col("transaction_id") == "t4").row(0, named=True)
    assert purchase["revenue"] == 7.0
    assert purchase["quantity"] == 2
    assert lake.get_column("source").unique().to_list() == ["canonical"]


def test_reingesting_the_same_file_adds_nothing(tmp_path: Path, limits: ValidationLimits) -> None:
    first = _ingest(BROKEN, tmp_path, limits, "run1")
    second = _ingest(BROKEN, tmp_path, limits, "run2")

    assert second.accepted == 0
    assert second.duplicates == first.accepted + first.duplicates
    assert second.quarantined == first.quarantined
    assert _lake(tmp_path).height == first.accepted


def test_lake_is_partitioned_by_event_date(tmp_path: Path, limits: ValidationLimits) -> None:
    _ingest(BROKEN, tmp_path, limits, "run1")
    partitions = sorted(p.name for p in (tmp_path / "lake" / EVENTS_DIR).iterdir())
    assert partitions == ["event_date=2025-03-01", "event_date=2025-03-03"]
    assert not (tmp_path / "lake" / "_staging" / "run1").exists()


def test_wrong_columns_fail_fast_naming_expected_and_found(
    tmp_path: Path, limits: ValidationLimits
) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("user;time;what\nv1;2025-01-01;pv\n")
    with pytest.raises(IngestError, match=r"Expected \[.*'visitor_id'.*found \['user;time;what'\]"):
        _ingest(wrong, tmp_path, limits, "run1")


def test_empty_file_is_a_clear_error(tmp_path: Path, limits: ValidationLimits) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IngestError, match="empty file"):
        _ingest(empty, tmp_path, limits, "run1")


def test_an_email_in_an_identifier_is_quarantined_and_masked_and_the_balance_holds(
    tmp_path: Path, limits: ValidationLimits
) -> None:
    """No email reaches the lake or the quarantine file through an id column."""
    source = tmp_path / "emails.csv"
    header = BROKEN.read_text().splitlines()[0]
    good = BROKEN.read_text().splitlines()[1]
    columns = header.split(",")
    cells = good.split(",")
    as_email = [*cells]
    as_email[columns.index("visitor_id")] = "Jane.Doe@shop.example"
    source.write_text("\n".join([header, good, ",".join(as_email)]) + "\n")

    report = _ingest(source, tmp_path, limits, "run1")

    assert report.quarantined == {"pii_in_identifier": 1}
    assert report.rows_read == report.accepted + sum(report.quarantined.values()) + (
        report.duplicates
    )
    assert report.quarantine_file is not None
    quarantine = Path(report.quarantine_file).read_text()
    assert "pii_in_identifier" in quarantine
    assert "jane.doe" not in quarantine.lower()
    assert "shop.example" not in quarantine
    assert "Jane.Doe@shop.example" not in _lake(tmp_path).write_csv()
