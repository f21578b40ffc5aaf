"""GA4 BigQuery export reader: flattening, bad lines, money, sessions and consent."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from features.events.schema import CONTACT_SCHEMA
from features.ingest.batch import LINE_COLUMN, RAW_COLUMN, IngestError
from features.ingest.contacts import merge_ads_consent, read_contacts, write_contacts
from features.ingest.ga4 import flatten_events, ga4_mapping, iter_ga4, read_ga4_consent
from features.ingest.ga4_records import decode_lines
from features.ingest.pipeline import IngestReport, ingest_file
from features.ingest.validate import ValidationLimits
from tests.conftest import FIXTURES

SAMPLE = FIXTURES / "ga4_sample.jsonl"
VISITOR_A = "1728394056.1709625600"
VISITOR_B = "2039485761.1709629200"
VISITOR_C = "3141592653.1709632800"
SAMPLE_QUARANTINE = {"unknown_event_name": 7, "unparseable_line": 1}


def _ingest(
    path: Path, tmp_path: Path, limits: ValidationLimits, batch_rows: int = 8
) -> IngestReport:
    return ingest_file(
        path,
        mapping=ga4_mapping(),
        lake_dir=tmp_path / "lake",
        quarantine_dir=tmp_path / "quarantine",
        limits=limits,
        batch_rows=batch_rows,
        ingest_id="test",
        reader=lambda p, n: iter_ga4(p, n),
    )


def _lake(tmp_path: Path) -> pl.DataFrame:
    files = sorted((tmp_path / "lake" / "events").glob("*/*.parquet"))
    return pl.read_parquet(files).sort("event_time", "visitor_id", "item_id", nulls_last=True)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf8").splitlines()


def _lines_frame(texts: list[str]) -> pl.DataFrame:
    numbers = list(range(1, len(texts) + 1))
    return pl.DataFrame(
        {LINE_COLUMN: numbers, RAW_COLUMN: texts},
        schema={LINE_COLUMN: pl.Int64, RAW_COLUMN: pl.String},
    )


def test_every_row_is_accounted_for(tmp_path: Path, limits: ValidationLimits) -> None:
    report = _ingest(SAMPLE, tmp_path, limits)
    # 20 events, one of them unreadable, three with two items, one repeated line: 24 rows.
    assert report.rows_read == 24
    assert report.accepted == 15
    assert report.duplicates == 1
    assert report.quarantined == SAMPLE_QUARANTINE
    assert report.rows_read == report.accepted + report.quarantined_total + report.duplicates
    assert report.visitors == 3
    assert report.first_event == datetime(2024, 3, 5, 8, 0, 5, 123, tzinfo=UTC)
    assert report.last_event == datetime(2024, 3, 5, 10, 0, 0, 123, tzinfo=UTC)


def test_quarantine_keeps_the_original_json_line(tmp_path: Path, limits: ValidationLimits) -> None:
    report = _ingest(SAMPLE, tmp_path, limits)
    assert report.quarantine_file is not None
    quarantined = pl.read_csv(report.quarantine_file, infer_schema=False)
    lines = _lines(SAMPLE)
    for line, raw in quarantined.select(pl.col("line").cast(int), "raw").iter_rows():
        assert raw == lines[line - 1]
    bad = quarantined.filter(pl.col("reason") == "unparseable_line")
    assert bad.get_column("line").to_list() == ["13"]
    assert bad.item(0, "detail").startswith("invalid JSON: Unterminated string")
    names = quarantined.filter(pl.col("reason") == "unknown_event_name").get_column("detail")
    assert sorted(set(names)) == [
        "event_name=first_visit",
        "event_name=scroll",
        "event_name=session_start",
        "event_name=user_engagement",
        "event_name=view_item_list",
    ]


def test_purchase_rows_add_up_to_the_order_revenue(
    tmp_path: Path, limits: ValidationLimits
) -> None:
    _ingest(SAMPLE, tmp_path, limits)
    events = _lake(tmp_path)
    orders = (
        events.filter(pl.col("event_name") == "purchase")
        .group_by("transaction_id", "visitor_id")
        .agg(pl.col("revenue").sum(), pl.len().alias("rows"), pl.col("quantity").sum())
        .sort("visitor_id")
    )
    assert orders.get_column("visitor_id").to_list() == [VISITOR_A, VISITOR_B]
    assert orders.get_column("transaction_id").to_list() == [
        "T-1001",
        f"ga4:{VISITOR_B}:1709629400000123",  # "(not set)" in the export: one order per event
    ]
    assert orders.get_column("rows").to_list() == [2, 1]
    assert orders.get_column("quantity").to_list() == [3, 2]
    # The export's purchase_revenue_in_usd: 124.98 (item revenues), 31.0 (price x quantity).
    assert orders.get_column("revenue").to_list() == pytest.approx([124.98, 31.0])
    not_purchases = events.filter(pl.col("event_name") != "purchase")
    assert not_purchases.get_column("revenue").null_count() == not_purchases.height


def test_session_ids_are_unique_per_visitor(tmp_path: Path, limits: ValidationLimits) -> None:
    _ingest(SAMPLE, tmp_path, limits)
    sessions = _lake(tmp_path).group_by("visitor_id").agg(pl.col("session_id").unique())
    assert dict(sessions.iter_rows()) == {
        VISITOR_A: [f"{VISITOR_A}:1709625600"],
        VISITOR_B: [f"{VISITOR_B}:1709629200"],
        VISITOR_C: [f"{VISITOR_C}:1709632800"],
    }


def test_items_and_not_set_values(tmp_path: Path, limits: ValidationLimits) -> None:
    _ingest(SAMPLE, tmp_path, limits)
    events = _lake(tmp_path)
    checkout = events.filter(pl.col("event_name") == "begin_checkout")
    assert checkout.select("item_id", "price", "quantity", "user_id").rows() == [
        ("SKU_1001", 49.99, 2, "u-1001"),
        ("SKU_2002", 25.0, 1, "u-1001"),
    ]
    page_views = events.filter(pl.col("event_name") == "page_view")
    assert page_views.height == 4
    assert page_views.get_column("item_id").null_count() == 4
    cap = events.filter(pl.col("item_id") == "SKU_3003")
    assert cap.get_column("item_category").null_count() == cap.height  # "(not set)"


@pytest.mark.parametrize("batch_rows", [1, 3, 1000])
def test_batch_size_does_not_change_the_result(
    tmp_path: Path, limits: ValidationLimits, batch_rows: int
) -> None:
    report = _ingest(SAMPLE, tmp_path / "batched", limits, batch_rows=batch_rows)
    assert (report.rows_read, report.accepted, report.duplicates) == (24, 15, 1)
    assert report.quarantined == SAMPLE_QUARANTINE
    _ingest(SAMPLE, tmp_path / "reference", limits)
    assert_frame_equal(_lake(tmp_path / "batched"), _lake(tmp_path / "reference"))


def test_reingest_is_a_no_op(tmp_path: Path, limits: ValidationLimits) -> None:
    _ingest(SAMPLE, tmp_path, limits)
    again = _ingest(SAMPLE, tmp_path, limits)
    assert (again.accepted, again.duplicates) == (0, 16)


def test_gzip_reads_like_plain_text(tmp_path: Path, limits: ValidationLimits) -> None:
    packed = tmp_path / "events.json.gz"
    packed.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    report = _ingest(packed, tmp_path / "gz", limits)
    assert (report.rows_read, report.accepted, report.duplicates) == (24, 15, 1)
    _ingest(SAMPLE, tmp_path / "plain", limits)
    assert_frame_equal(_lake(tmp_path / "gz"), _lake(tmp_path / "plain"))


_VALUE = pa.struct(
    [("string_value", pa.string()), ("int_value", pa.int64()),
     ("float_value", pa.float64()), ("double_value", pa.float64())]
)  # fmt: skip
_ITEM = pa.struct(
    [("item_id", pa.string()), ("item_name", pa.string()), ("item_brand", pa.string()),
     ("item_category", pa.string()), ("price_in_usd", pa.float64()), ("price", pa.float64()),
     ("quantity", pa.int64()), ("item_revenue_in_usd", pa.float64()),
     ("item_revenue", pa.float64())]
)  # fmt: skip
#: The BigQuery export's Parquet shape (a subset of its columns, native types).
BIGQUERY_SCHEMA = pa.schema(
    [
        ("event_date", pa.string()),
        ("event_timestamp", pa.int64()),
        ("event_name", pa.string()),
        ("event_params", pa.list_(pa.struct([("key", pa.string()), ("value", _VALUE)]))),
        ("user_id", pa.string()),
        ("user_pseudo_id", pa.string()),
        ("privacy_info", pa.struct([(k, pa.string()) for k in
                                    ("analytics_storage", "ads_storage", "uses_transient_token")])),
        ("ecommerce", pa.struct([("total_item_quantity", pa.int64()),
                                 ("purchase_revenue_in_usd", pa.float64()),
                                 ("transaction_id", pa.string())])),
        ("items", pa.list_(_ITEM)),
    ]
)  # fmt: skip


def _sample_as_parquet(path: Path) -> Path:
    rows = []
    for text in _lines(SAMPLE):
        try:
            rows.append(json.loads(text))
        except json.JSONDecodeError:
            continue  # Parquet has no malformed lines
    pq.write_table(pa.Table.from_pylist(rows, schema=BIGQUERY_SCHEMA), path)
    return path


def test_parquet_export_gives_the_same_events(tmp_path: Path, limits: ValidationLimits) -> None:
    parquet = _sample_as_parquet(tmp_path / "events_20240305.parquet")
    report = _ingest(parquet, tmp_path / "parquet", limits)
    assert (report.rows_read, report.accepted, report.duplicates) == (23, 15, 1)
    assert report.quarantined == {"unknown_event_name": 7}
    _ingest(SAMPLE, tmp_path / "json", limits)
    assert_frame_equal(_lake(tmp_path / "parquet"), _lake(tmp_path / "json"))
    assert read_ga4_consent(parquet).equals(read_ga4_consent(SAMPLE))


def test_parquet_quarantine_keeps_the_row_as_json(tmp_path: Path, limits: ValidationLimits) -> None:
    report = _ingest(_sample_as_parquet(tmp_path / "e.parquet"), tmp_path, limits)
    assert report.quarantine_file is not None
    first = pl.read_csv(report.quarantine_file, infer_schema=False).row(0, named=True)
    assert (first["line"], first["reason"]) == ("1", "unknown_event_name")
    assert json.loads(first["raw"])["event_name"] == "session_start"


def test_parquet_in_another_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wrong.parquet"
    table = {"event_timestamp": [1], "event_name": ["page_view"], "user_pseudo_id": ["v"],
             "items": ["not a list"]}  # fmt: skip
    pl.DataFrame(table).write_parquet(path)
    with pytest.raises(IngestError, match="items should be a list"):
        list(iter_ga4(path, 10))


def test_consent_is_the_latest_privacy_info_per_visitor() -> None:
    consent = read_ga4_consent(SAMPLE)
    assert consent.schema == pl.Schema(CONTACT_SCHEMA)
    assert consent.rows() == [
        # A's last line says "No" but is earlier in time than the "Yes" purchase.
        (VISITOR_A, "unknown", "granted", datetime(2024, 3, 5, 8, 7, 0, 123, tzinfo=UTC)),
        (VISITOR_B, "unknown", "denied", datetime(2024, 3, 5, 9, 3, 20, 123, tzinfo=UTC)),
        (VISITOR_C, "unknown", "unknown", datetime(2024, 3, 5, 10, 0, 40, 123, tzinfo=UTC)),
    ]


def _event(**fields: object) -> dict[str, object]:
    return {"event_timestamp": 1709625600000000, "event_name": "purchase",
            "user_pseudo_id": "v1", **fields}  # fmt: skip


def test_bad_lines_are_isolated_with_their_reason() -> None:
    good = json.dumps(_event())
    texts = [good, "[1, 2]", "null", json.dumps(_event(items="oops")), '{"event_name": ', good]
    records, unreadable = decode_lines(_lines_frame(texts))
    assert records.get_column(LINE_COLUMN).to_list() == [1, 6]
    assert unreadable.get_column("line").to_list() == [2, 3, 4, 5]
    assert unreadable.get_column("raw").to_list() == texts[1:5]
    details = unreadable.get_column("detail").to_list()
    assert details[0] == "expected a JSON object, found [1, 2]"
    assert details[1] == "expected a JSON object, found null"
    assert details[2].startswith("not in GA4 export shape:")
    assert details[3].startswith("invalid JSON:")


def test_bigquery_json_integers_as_strings_read_like_numbers() -> None:
    param = {"key": "ga_session_id", "value": {"int_value": 1709625600}}
    item = {"item_id": "SKU_1", "price": 2.5, "quantity": 2}
    numeric = _event(event_params=[param], items=[item])
    as_text = _event(
        event_timestamp="1709625600000000",
        event_params=[{"key": "ga_session_id", "value": {"int_value": "1709625600"}}],
        items=[{**item, "quantity": "2"}],
    )
    flat = [
        flatten_events(decode_lines(_lines_frame([json.dumps(e)]))[0]).drop(RAW_COLUMN)
        for e in (numeric, as_text)
    ]
    assert_frame_equal(flat[0], flat[1])
    assert flat[0].get_column("session_id").to_list() == ["v1:1709625600"]
    assert flat[0].get_column("revenue").cast(pl.Float64).to_list() == [5.0]


def test_refund_rows_carry_the_refunded_amount() -> None:
    refund = _event(
        event_name="refund",
        ecommerce={"transaction_id": "T-9", "refund_value_in_usd": 40.0},
        items=[{"item_id": "SKU_1", "quantity": 1, "item_refund_in_usd": 30.0},
               {"item_id": "SKU_2", "quantity": 1, "price": 10.0}],
    )  # fmt: skip
    whole_order = _event(event_name="refund", ecommerce={"refund_value_in_usd": 40.0})
    records, _ = decode_lines(_lines_frame([json.dumps(refund), json.dumps(whole_order)]))
    flat = flatten_events(records)
    revenue = flat.get_column("revenue").cast(pl.Float64)
    assert revenue.to_list() == [30.0, 10.0, 40.0]
    assert flat.get_column("transaction_id").to_list() == ["T-9", "T-9", None]


def test_ga4_consent_keeps_a_known_email_status(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    consent = read_ga4_consent(FIXTURES / "ga4_sample.jsonl")
    visitor = consent.get_column("visitor_id")[0]
    write_contacts(
        lake,
        pl.DataFrame(
            {
                "visitor_id": [visitor],
                "email_status": ["subscribed"],
                "ads_consent": ["unknown"],
                "updated_at": [datetime(2020, 1, 1, tzinfo=UTC)],
            },
            schema=CONTACT_SCHEMA,
        ),
    )
    assert merge_ads_consent(lake, consent) == consent.height
    merged = read_contacts(lake).filter(pl.col("visitor_id") == visitor).row(0, named=True)
    assert merged["email_status"] == "subscribed"
    assert merge_ads_consent(lake, consent) == 0  # idempotent
