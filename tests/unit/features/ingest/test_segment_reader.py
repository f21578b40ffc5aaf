"""Segment / RudderStack JSON-lines dumps through the shared validation and quarantine."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from features.ingest.pipeline import IngestReport, ingest_file
from features.ingest.segment_reader import iter_segment, segment_mapping
from features.ingest.sources import resolve_source
from features.ingest.validate import ValidationLimits
from tests.conftest import FIXTURES

SAMPLE = FIXTURES / "segment_sample.jsonl"
SAMPLE_IGNORED = {"identify": 1, "Cart Viewed": 1, "screen": 1}
SAMPLE_QUARANTINE = {"unparseable_line": 2, "bad_price": 1}


def _ingest(
    path: Path, tmp_path: Path, limits: ValidationLimits, batch_rows: int = 4
) -> IngestReport:
    source = resolve_source("segment", None)
    return ingest_file(
        path,
        mapping=source.mapping,
        lake_dir=tmp_path / "lake",
        quarantine_dir=tmp_path / "quarantine",
        limits=limits,
        batch_rows=batch_rows,
        ingest_id="test",
        reader=source.reader,
    )


def _lake(tmp_path: Path) -> pl.DataFrame:
    files = sorted((tmp_path / "lake" / "events").glob("*/*.parquet"))
    return pl.read_parquet(files).sort("event_time", "item_id", nulls_last=True)


def test_every_call_is_accepted_quarantined_or_ignored(
    tmp_path: Path, limits: ValidationLimits
) -> None:
    report = _ingest(SAMPLE, tmp_path, limits)
    # 12 non-blank lines: 11 records (an order of two products, a checkout of two), two
    # unreadable lines and three calls ignored by name.
    assert report.rows_read == 16
    assert report.accepted == 10
    assert report.quarantined == SAMPLE_QUARANTINE
    assert report.ignored == SAMPLE_IGNORED
    assert report.to_dict()["ignored"] == SAMPLE_IGNORED
    report.check_balance()
    assert report.visitors == 3  # anon-2 and the server-side refund are u-1, hence anon-1


def test_quarantine_gives_the_reason_and_the_original_line(
    tmp_path: Path, limits: ValidationLimits
) -> None:
    report = _ingest(SAMPLE, tmp_path, limits)
    assert report.quarantine_file is not None
    quarantined = pl.read_csv(report.quarantine_file, infer_schema=False).sort("line")
    lines = SAMPLE.read_text(encoding="utf8").splitlines()
    assert quarantined.select("line", "reason").rows() == [
        ("7", "unparseable_line"),
        ("8", "unparseable_line"),
        ("9", "bad_price"),
    ]
    details = quarantined.get_column("detail").to_list()
    assert details[0].startswith("invalid JSON")
    assert details[1].startswith("expected a JSON object")
    assert details[2] == "price=abc"
    for line, raw in quarantined.select(pl.col("line").cast(int), "raw").iter_rows():
        assert raw == lines[line - 1]
    assert "jane@example.com" not in Path(report.quarantine_file).read_text()  # identify traits


def test_events_in_the_lake(tmp_path: Path, limits: ValidationLimits) -> None:
    _ingest(SAMPLE, tmp_path, limits)
    events = _lake(tmp_path)
    assert events.get_column("source").unique().to_list() == ["segment"]
    assert events.get_column("event_name").to_list() == [
        "page_view",
        "view_item",
        "purchase",
        "purchase",
        "add_to_cart",
        "begin_checkout",
        "begin_checkout",
        "refund",
        "remove_from_cart",
        "add_to_wishlist",
    ]
    by_visitor = events.group_by("visitor_id").len().sort("visitor_id")
    assert by_visitor.rows() == [("anon-1", 6), ("anon-3", 2), ("anon-4", 2)]
    order = events.filter(pl.col("event_name") == "purchase")
    assert order.get_column("revenue").sum() == pytest.approx(50.0)  # revenue, not total
    assert order.get_column("transaction_id").unique().to_list() == ["O-1"]
    refund = events.filter(pl.col("event_name") == "refund")
    assert refund.select("revenue", "user_id", "item_id").rows() == [(10.0, "u-1", "P2")]
    page = events.filter(pl.col("event_name") == "page_view")
    assert page.get_column("session_id").to_list() == ["1709625600"]


def test_gzip_gives_the_same_lake(tmp_path: Path, limits: ValidationLimits) -> None:
    packed = tmp_path / "dump.json.gz"
    packed.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    plain = _ingest(SAMPLE, tmp_path / "plain", limits)
    gz = _ingest(packed, tmp_path / "gz", limits)
    assert (gz.rows_read, gz.accepted, gz.quarantined, gz.ignored) == (
        plain.rows_read,
        plain.accepted,
        plain.quarantined,
        plain.ignored,
    )
    assert _lake(tmp_path / "gz").equals(_lake(tmp_path / "plain"))


@pytest.mark.parametrize("batch_rows", [1, 3, 1000])
def test_batch_size_does_not_change_the_result(
    tmp_path: Path, limits: ValidationLimits, batch_rows: int
) -> None:
    report = _ingest(SAMPLE, tmp_path / "batched", limits, batch_rows=batch_rows)
    reference = _ingest(SAMPLE, tmp_path / "reference", limits)
    assert (report.accepted, report.quarantined, report.ignored) == (
        reference.accepted,
        reference.quarantined,
        reference.ignored,
    )
    # The identity rule sees the whole file, not the batch: a later line links anon-2.
    assert _lake(tmp_path / "batched").equals(_lake(tmp_path / "reference"))


def test_a_line_that_is_not_utf8_is_quarantined(tmp_path: Path, limits: ValidationLimits) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(SAMPLE.read_bytes().splitlines(keepends=True)[0] + b'{"type":"\xff"}\n')
    report = _ingest(dump, tmp_path, limits)
    assert (report.accepted, report.quarantined) == (1, {"unparseable_line": 1})


def test_the_reader_keeps_each_calls_line(tmp_path: Path) -> None:
    batches = list(iter_segment(SAMPLE, 100))
    assert len(batches) == 1
    records = batches[0].records
    assert records.filter(pl.col("item_id") == "P5").get_column("_line").to_list() == [9]
    assert segment_mapping().name == "segment"
