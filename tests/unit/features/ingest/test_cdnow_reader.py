"""CDNOW purchase-log reader: line splitting, header, layouts, and the real files."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from features.ingest.cdnow import cdnow_mapping, iter_cdnow
from features.ingest.pipeline import IngestReport, ingest_file
from features.ingest.validate import ValidationLimits
from tests.conftest import FIXTURES, NOW

SAMPLE = FIXTURES / "cdnow_sample.txt"
#: CDNOW is 1997-1998: older than the default lower bound of 2000.
CDNOW_LIMITS = ValidationLimits(min_event_time=datetime(1990, 1, 1, tzinfo=UTC), max_event_time=NOW)


def _ingest(path: Path, tmp_path: Path, batch_rows: int = 5) -> IngestReport:
    return ingest_file(
        path,
        mapping=cdnow_mapping(),
        lake_dir=tmp_path / "lake",
        quarantine_dir=tmp_path / "quarantine",
        limits=CDNOW_LIMITS,
        batch_rows=batch_rows,
        ingest_id="test",
        reader=lambda p, n: iter_cdnow(p, n),
    )


def _lake(tmp_path: Path) -> pl.DataFrame:
    files = sorted((tmp_path / "lake" / "events").glob("*/*.parquet"))
    return pl.read_parquet(files).sort("visitor_id", "event_time", "revenue")


def test_every_line_is_accounted_for(tmp_path: Path) -> None:
    report = _ingest(SAMPLE, tmp_path)
    assert report.rows_read == 16  # the header line is not a row
    assert report.quarantined == {"unparseable_line": 2, "bad_revenue": 1, "bad_timestamp": 1}
    assert report.duplicates == 1
    assert report.accepted == 11
    assert report.rows_read == report.accepted + report.quarantined_total + report.duplicates
    assert report.visitors == 5
    assert report.first_event == datetime(1997, 1, 1, tzinfo=UTC)
    assert report.last_event == datetime(1997, 12, 12, tzinfo=UTC)


def test_quarantine_names_the_line_and_keeps_its_text(tmp_path: Path) -> None:
    report = _ingest(SAMPLE, tmp_path)
    assert report.quarantine_file is not None
    quarantined = pl.read_csv(report.quarantine_file, infer_schema=False).sort(
        pl.col("line").cast(pl.Int64)
    )
    assert quarantined.select("line", "reason", "raw").rows() == [
        ("12", "unparseable_line", " 00005 1997011  1   11.77"),
        ("13", "bad_revenue", " 00005 19970101  1   abc"),
        ("14", "unparseable_line", " 00006 19970101"),
        ("17", "bad_timestamp", " 00008 19971340  1   10.00"),
    ]
    assert quarantined.item(0, "detail").startswith("expected `customer_id date(YYYYMMDD)")


def test_lines_of_one_customer_and_date_are_one_order(tmp_path: Path) -> None:
    _ingest(SAMPLE, tmp_path)
    events = _lake(tmp_path)
    assert set(events.get_column("event_name")) == {"purchase"}
    assert events.get_column("visitor_id").equals(events.get_column("user_id"), check_names=False)
    day = events.filter(pl.col("visitor_id") == "00002")
    assert day.get_column("transaction_id").unique().to_list() == [
        f"cdnow:00002:{int(datetime(1997, 1, 12, tzinfo=UTC).timestamp() * 1e6)}"
    ]
    assert day.select(pl.col("quantity").sum(), pl.col("revenue").sum()).row(0) == (6, 89.0)
    assert events.get_column("transaction_id").n_unique() == 10


def test_the_1_10_sample_layout_uses_the_master_id(tmp_path: Path) -> None:
    sample = tmp_path / "CDNOW_sample.txt.gz"
    lines = [" 00004 0001 19970101  2   29.33", " 00004 0001 19970118  2   29.73",
             " 00018 0002 19970101  1   14.96", " 00018 19970104  1   11.77"]  # fmt: skip
    sample.write_bytes(gzip.compress(("\r\n".join(lines) + "\r\n").encode()))
    report = _ingest(sample, tmp_path)
    assert (report.rows_read, report.accepted, report.quarantined) == (
        4, 3, {"unparseable_line": 1}
    )  # fmt: skip
    assert set(_lake(tmp_path).get_column("visitor_id")) == {"00004", "00018"}


@pytest.mark.parametrize("batch_rows", [1, 4, 100])
def test_batch_size_does_not_change_the_result(tmp_path: Path, batch_rows: int) -> None:
    report = _ingest(SAMPLE, tmp_path / "batched", batch_rows=batch_rows)
    assert (report.rows_read, report.accepted, report.duplicates) == (16, 11, 1)
    _ingest(SAMPLE, tmp_path / "reference")
    assert_frame_equal(_lake(tmp_path / "batched"), _lake(tmp_path / "reference"))


def test_a_file_without_header_reads_the_same(tmp_path: Path) -> None:
    headless = tmp_path / "headless.txt"
    headless.write_bytes(b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[1:]))
    report = _ingest(headless, tmp_path / "headless")
    assert (report.rows_read, report.accepted) == (16, 11)
    _ingest(SAMPLE, tmp_path / "reference")
    assert_frame_equal(_lake(tmp_path / "headless"), _lake(tmp_path / "reference"))


def _real_file(shared_data: Path, name: str) -> Path:
    path = shared_data / "cdnow" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: CDNOW real-data test skipped")
    return path


@pytest.mark.shared_data
def test_real_master_file(shared_data: Path, tmp_path: Path) -> None:
    report = _ingest(_real_file(shared_data, "CDNOW_master.txt.gz"), tmp_path, batch_rows=20_000)
    # 69,660 physical lines: the header plus the 69,659 purchases of the published figures.
    assert report.rows_read == 69_659
    assert report.quarantined == {}
    # Identical lines (same customer, day, CDs and dollars) collapse as duplicates in the lake.
    assert (report.accepted, report.duplicates) == (69_404, 255)
    assert report.visitors == 23_570
    assert report.first_event == datetime(1997, 1, 1, tzinfo=UTC)
    assert report.last_event == datetime(1998, 6, 30, tzinfo=UTC)
    orders = _lake(tmp_path).get_column("transaction_id").n_unique()
    assert orders == 67_591  # customer-days


@pytest.mark.shared_data
def test_real_sample_file(shared_data: Path, tmp_path: Path) -> None:
    report = _ingest(_real_file(shared_data, "CDNOW_sample.txt.gz"), tmp_path, batch_rows=20_000)
    assert (report.rows_read, report.quarantined, report.visitors) == (6_919, {}, 2_357)
    assert report.accepted + report.duplicates == 6_919


def test_blank_and_non_utf8_lines(tmp_path: Path) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes(b"\xef\xbb\xbf 00001 19970101  1   11.77\n\n 0000\xe9 19970101  1   1.00\n")
    report = _ingest(path, tmp_path)
    # The BOM does not stick to the first customer id; a blank line is not a row.
    assert (report.rows_read, report.accepted, report.quarantined) == (
        2, 1, {"unparseable_line": 1}
    )  # fmt: skip
    assert set(_lake(tmp_path).get_column("visitor_id")) == {"00001"}
    assert report.quarantine_file is not None
    quarantined = pl.read_csv(report.quarantine_file, infer_schema=False)
    assert quarantined.select("line", "detail").row(0) == ("3", "not UTF-8 at byte 5")
