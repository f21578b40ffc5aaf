"""Validation rules on tiny frames: every record accepted or quarantined, never both."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.events.schema import EVENT_SCHEMA
from features.ingest.batch import LINE_COLUMN
from features.ingest.mapping import SourceMapping, TimeSpec
from features.ingest.validate import ValidationLimits, parse_event_time, validate_batch


def _records(**columns: list[str | None]) -> pl.DataFrame:
    frame = pl.DataFrame(columns, schema={name: pl.String for name in columns})
    return frame.with_row_index(LINE_COLUMN, offset=2).cast({LINE_COLUMN: pl.Int64})


def _mapping(**overrides: object) -> SourceMapping:
    base: dict[str, object] = {
        "name": "test",
        "columns": {"visitor_id": "who", "event_time": "when", "event_name": "what"},
    }
    return SourceMapping.model_validate({**base, **overrides})


@pytest.mark.parametrize(
    ("fmt", "timezone", "raw", "expected"),
    [
        ("iso", "UTC", "2024-03-01T10:00:00+02:00", datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("iso", "UTC", "2024-03-01T10:00:00.250Z", datetime(2024, 3, 1, 10, 0, 0, 250000, UTC)),
        ("iso", "Europe/London", "2024-07-01 10:00:00", datetime(2024, 7, 1, 9, tzinfo=UTC)),
        ("iso", "UTC", "2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        ("unix_s", "UTC", "1511544070", datetime(2017, 11, 24, 17, 21, 10, tzinfo=UTC)),
        ("unix_ms", "UTC", "1433221332117", datetime(2015, 6, 2, 5, 2, 12, 117000, tzinfo=UTC)),
        ("unix_us", "UTC", "1700000000000001", datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC)),
        (
            "%m/%d/%Y %H:%M",
            "Europe/London",
            "12/1/2010 8:26",
            datetime(2010, 12, 1, 8, 26, 0, 0, UTC),
        ),
        ("%Y%m%d", "UTC", "19970101", datetime(1997, 1, 1, tzinfo=UTC)),
        ("unix_s", "UTC", "soon", None),
        ("iso", "UTC", "yesterday", None),
    ],
)
def test_parse_event_time(fmt: str, timezone: str, raw: str, expected: datetime | None) -> None:
    parsed = pl.select(
        parse_event_time(pl.lit(raw), pl.String(), TimeSpec(format=fmt, timezone=timezone))
    ).item()
    assert parsed == expected


def test_nonexistent_local_time_is_quarantined_not_shifted(limits: ValidationLimits) -> None:
    # 01:30 on 2024-03-31 does not exist in London (clocks jump 01:00 -> 02:00).
    mapping = _mapping(time={"format": "iso", "timezone": "Europe/London"})
    records = _records(who=["v1"], when=["2024-03-31 01:30:00"], what=["page_view"])
    result = validate_batch(records, mapping, limits)
    assert result.accepted.is_empty()
    assert result.quarantined.get_column("reason").to_list() == ["bad_timestamp"]


def test_refund_rule_turns_cancellations_into_positive_refunds(limits: ValidationLimits) -> None:
    mapping = _mapping(
        columns={
            "visitor_id": "who",
            "event_time": "when",
            "transaction_id": "invoice",
            "quantity": "qty",
            "price": "unit",
        },
        constants={"event_name": "purchase"},
        refund={"column": "invoice", "prefix": "C"},
    )
    records = _records(
        who=["1", "1"],
        when=["2011-01-01", "2011-01-02"],
        invoice=["536365", "C536379"],
        qty=["6", "-2"],
        unit=["2.55", "2.55"],
    )
    accepted = validate_batch(records, mapping, limits).accepted
    assert accepted.select("event_name", "quantity", "revenue").rows() == [
        ("purchase", 6, pytest.approx(15.3)),
        ("refund", 2, pytest.approx(5.1)),
    ]


def test_integer_ids_written_as_floats_are_normalised(limits: ValidationLimits) -> None:
    mapping = _mapping(integer_ids=["visitor_id"])
    records = _records(who=["17850.0", "17850"], when=["2011-01-01"] * 2, what=["page_view"] * 2)
    accepted = validate_batch(records, mapping, limits).accepted
    assert accepted.get_column("visitor_id").to_list() == ["17850", "17850"]


def test_purchases_without_order_id_get_one_per_visitor_and_second(
    limits: ValidationLimits,
) -> None:
    mapping = _mapping(synthesize_transaction_id=True)
    records = _records(
        who=["a", "a", "a", "b"],
        when=["2024-01-01T00:00:00+00:00"] * 2 + ["2024-01-01T00:00:01+00:00"] * 2,
        what=["purchase", "purchase", "purchase", "view_item"],
    )
    ids = validate_batch(records, mapping, limits).accepted.get_column("transaction_id")
    assert ids[0] == ids[1] != ids[2]
    assert ids[3] is None


def test_event_names_are_mapped_and_unmapped_ones_quarantined(limits: ValidationLimits) -> None:
    mapping = _mapping(event_names={"pv": "view_item"})
    records = _records(who=["a", "a"], when=["2024-01-01"] * 2, what=["pv", "click"])
    result = validate_batch(records, mapping, limits)
    assert result.accepted.get_column("event_name").to_list() == ["view_item"]
    assert result.quarantined.select("reason", "detail").row(0) == (
        "unknown_event_name",
        "event_name=click",
    )


def test_control_characters_in_visitor_id_are_quarantined(limits: ValidationLimits) -> None:
    records = _records(
        who=["ok", "bad\x00id", "x" * 300], when=["2024-01-01"] * 3, what=["page_view"] * 3
    )
    result = validate_batch(records, _mapping(), limits)
    assert result.accepted.get_column("visitor_id").to_list() == ["ok"]
    assert result.quarantined.get_column("reason").to_list() == ["bad_visitor_id"] * 2


def test_old_events_are_quarantined(limits: ValidationLimits) -> None:
    records = _records(who=["a"], when=["1970-01-02"], what=["page_view"])
    result = validate_batch(records, _mapping(), limits)
    assert result.quarantined.get_column("reason").to_list() == ["timestamp_too_old"]


def test_accepted_events_follow_the_canonical_schema(limits: ValidationLimits) -> None:
    records = _records(who=["a"], when=["2024-01-01"], what=["page_view"])
    assert validate_batch(records, _mapping(), limits).accepted.schema == pl.Schema(EVENT_SCHEMA)


texts = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["page_view", "purchase"]))
times = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda moment: moment.isoformat()
    ),
)


@given(rows=st.lists(st.tuples(texts, times, texts), max_size=30))
def test_every_record_is_accepted_or_quarantined_exactly_once(
    rows: list[tuple[str | None, str | None, str | None]],
) -> None:
    limits = ValidationLimits(datetime(2000, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    records = _records(
        who=[r[0] for r in rows], when=[r[1] for r in rows], what=[r[2] for r in rows]
    )
    result = validate_batch(records, _mapping(), limits)
    assert result.accepted.height + result.quarantined.height == len(rows)
    assert result.quarantined.get_column("reason").null_count() == 0
    assert result.accepted.get_column("event_time").null_count() == 0


def test_quantities_too_large_to_be_counts_are_quarantined(limits: ValidationLimits) -> None:
    records = _records(
        who=["a", "b", "c"],
        when=["2024-01-01"] * 3,
        what=["add_to_cart"] * 3,
        qty=["3", "1e19", "-1e300"],
    )
    result = validate_batch(records, _mapping(columns={
        "visitor_id": "who", "event_time": "when", "event_name": "what", "quantity": "qty"
    }), limits)  # fmt: skip
    assert result.accepted.get_column("quantity").to_list() == [3]
    assert result.quarantined.get_column("reason").to_list() == ["bad_quantity"] * 2
