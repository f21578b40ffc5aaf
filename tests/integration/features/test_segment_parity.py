"""Parity: a Segment stream and the same events as canonical CSV give the same lake and
the same features; and ``propensity ingest --format segment`` end to end."""

from __future__ import annotations

import csv
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from features.batch import build_features, collect
from features.events.schema import EVENT_COLUMNS, EventName
from features.ingest.lake_writer import EVENTS_DIR
from features.ingest.mapping import builtin_mapping
from features.ingest.pipeline import ingest_file
from features.ingest.segment import SEGMENT_TO_GA4
from features.ingest.sources import resolve_source
from features.ingest.validate import ValidationLimits
from features.testing import AS_OF, event_lists
from propensity.cli import app
from tests.conftest import FIXTURES, NOW

LIMITS = ValidationLimits(
    min_event_time=datetime(2000, 1, 1, tzinfo=UTC), max_event_time=NOW + timedelta(days=1)
)
_GA4_TO_SEGMENT = {canonical: name for name, canonical in SEGMENT_TO_GA4.items()}
_ORDERS = (EventName.PURCHASE, EventName.REFUND)
_WITH_PRODUCTS_ARRAY = (*_ORDERS, EventName.BEGIN_CHECKOUT)
_ITEM_FIELDS = ("item_id", "item_category", "price", "quantity")


def _representable(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as the spec can say it: items only on product events, revenue only on
    orders (and always there: without it the reader uses price x quantity), an order id
    on every purchase (the Segment mapping makes one up otherwise), one user per visitor
    (the identity rule is the Segment reader's own, tested apart)."""
    name = EventName(row["event_name"])
    row = {**row, "source": None}
    if name is EventName.PAGE_VIEW or row["item_id"] is None:
        row.update(dict.fromkeys(_ITEM_FIELDS))
    if name in _ORDERS:
        row["revenue"] = row["revenue"] if row["revenue"] is not None else 1.25
        row["transaction_id"] = row["transaction_id"] or "t-auto"
    else:
        row["revenue"] = None
    if row["user_id"] is not None:
        row["user_id"] = f"u-{row['visitor_id']}"
    return row


def _segment_call(row: dict[str, Any]) -> dict[str, Any]:
    name = EventName(row["event_name"])
    product = {
        key: row[field]
        for key, field in (
            ("product_id", "item_id"),
            ("category", "item_category"),
            ("price", "price"),
            ("quantity", "quantity"),
        )
        if row[field] is not None
    }
    properties: dict[str, Any] = {}
    if name in _WITH_PRODUCTS_ARRAY:
        properties["products"] = [product] if product else []
    else:
        properties.update(product)
    if row["transaction_id"] is not None:
        properties["order_id"] = row["transaction_id"]
    if name in _ORDERS:
        properties["revenue"] = row["revenue"]
    call: dict[str, Any] = {
        "anonymousId": row["visitor_id"],
        "timestamp": row["event_time"].isoformat(),
        "properties": properties,
        "context": {"sessionId": row["session_id"]} if row["session_id"] else {},
    }
    if row["user_id"] is not None:
        call["userId"] = row["user_id"]
    if name is EventName.PAGE_VIEW:
        return {"type": "page", **call}
    return {"type": "track", "event": _GA4_TO_SEGMENT[name], **call}


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns = [c for c in EVENT_COLUMNS if c != "source"]
    with path.open("w", newline="", encoding="utf8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [row[c].isoformat() if isinstance(row[c], datetime) else row[c] for c in columns]
            )


def _lake(root: Path) -> pl.DataFrame:
    files = sorted((root / EVENTS_DIR).glob("*/*.parquet"))
    if not files:
        return pl.DataFrame()
    events = pl.read_parquet(files).drop("source")
    return events.sort(events.columns, nulls_last=True)


def _ingest_both(rows: list[dict[str, Any]], work: Path) -> tuple[Path, Path]:
    csv_file, segment_file = work / "events.csv", work / "events.jsonl"
    _write_csv(rows, csv_file)
    segment_file.write_bytes(b"".join(orjson.dumps(_segment_call(r)) + b"\n" for r in rows))
    segment = resolve_source("segment", None)
    for file, mapping, reader, lake in (
        (csv_file, builtin_mapping("canonical"), None, work / "csv_lake"),
        (segment_file, segment.mapping, segment.reader, work / "segment_lake"),
    ):
        report = ingest_file(
            file,
            mapping=mapping,
            lake_dir=lake,
            quarantine_dir=work / "quarantine",
            limits=LIMITS,
            batch_rows=7,
            ingest_id="parity",
            reader=reader,
        )
        assert report.quarantined == {}, report.quarantined
    return work / "csv_lake", work / "segment_lake"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=event_lists(min_size=1, max_size=25))
def test_segment_and_canonical_csv_give_the_same_lake_and_features(
    history: list[dict[str, Any]],
) -> None:
    rows = [_representable(row) for row in history]
    with tempfile.TemporaryDirectory() as tmp:
        csv_lake, segment_lake = _ingest_both(rows, Path(tmp))
        assert_frame_equal(_lake(segment_lake), _lake(csv_lake))
        from_segment = collect(build_features(segment_lake, AS_OF)).sort("visitor_id")
        from_csv = collect(build_features(csv_lake, AS_OF)).sort("visitor_id")
        assert_frame_equal(from_segment, from_csv)


def test_cli_ingests_a_segment_dump(tmp_path: Path) -> None:
    env = {"PROPENSITY_DATA_DIR": str(tmp_path / "data"), "PROPENSITY_LOG_LEVEL": "WARNING"}
    dump = FIXTURES / "segment_sample.jsonl"
    result = CliRunner().invoke(
        app, ["ingest", str(dump), "--format", "segment", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"] == "segment"
    assert summary["ignored"] == {"identify": 1, "Cart Viewed": 1, "screen": 1}
    assert summary["rows_read"] == summary["accepted"] + sum(summary["quarantined"].values()) + (
        summary["duplicates"] + sum(summary["ignored"].values())
    )
    table = CliRunner().invoke(app, ["ingest", str(dump), "--format", "segment"], env=env)
    assert table.exit_code == 0, table.output
    assert "ignored" in table.stdout and "Cart Viewed" in table.stdout
