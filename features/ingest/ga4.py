"""Read a GA4 BigQuery export (JSON lines, plain or gzip, or Parquet) as tabular batches.

The reader only flattens GA4's nested rows; ``mappings/ga4.toml`` then maps, parses and
validates them through the shared ``validate_batch``. Grain of the flattened records: one
per (event, item), an event without items being one record with null item fields, which
is the grain of the canonical events. Every record keeps its event's original JSON in
``RAW_COLUMN`` so a quarantined row can be read as it came.

Money: ``revenue`` is only set on ``purchase`` and ``refund`` records, so that it stays
additive over an order. An item row carries the item's revenue (``item_revenue_in_usd``,
else ``item_revenue``, else price x quantity; ``item_refund*`` for refunds); an event
without items carries the event total (``purchase_revenue_in_usd`` / ``refund_value_in_usd``).
USD amounts are preferred over the property's currency wherever both are present.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from features.events.schema import CONTACT_COLUMNS, CONTACT_SCHEMA, AdsConsent, EmailStatus
from features.ingest.batch import LINE_COLUMN, RAW_COLUMN, RawBatch
from features.ingest.ga4_records import iter_ga4_records
from features.ingest.mapping import SourceMapping, TimeSpec, builtin_mapping
from features.ingest.validate import parse_event_time

#: Columns of the flattened records (besides ``LINE_COLUMN`` and ``RAW_COLUMN``).
GA4_COLUMNS: tuple[str, ...] = (
    "event_timestamp", "event_name", "user_pseudo_id", "user_id", "session_id",
    "item_id", "item_category", "price", "quantity", "revenue", "transaction_id",
)  # fmt: skip
#: GA4's placeholder for "no value" in dimensions.
NOT_SET = "(not set)"
_CONSENT_BATCH_ROWS = 100_000


def ga4_mapping() -> SourceMapping:
    """The packaged mapping from the flattened columns to canonical events."""
    return builtin_mapping("ga4")


def _field(column: str, name: str) -> pl.Expr:
    return pl.col(column).struct.field(name)


def _present(expr: pl.Expr) -> pl.Expr:
    """``expr`` with GA4's ``(not set)`` placeholder as null."""
    return pl.when(expr != NOT_SET).then(expr)


def _session_id() -> pl.Expr:
    """``<user_pseudo_id>:<ga_session_id>``: ga_session_id is a start time, not unique."""
    param = pl.element().struct.field
    value = (
        pl.col("event_params")
        .list.eval(pl.element().filter(param("key") == "ga_session_id").struct.field("value"))
        .list.first()
    )
    ga_session = pl.coalesce(value.struct.field("int_value"), value.struct.field("string_value"))
    return pl.concat_str(pl.col("user_pseudo_id"), pl.lit(":"), ga_session)


def _by_event(purchase: pl.Expr, refund: pl.Expr) -> pl.Expr:
    name = pl.col("event_name")
    return pl.when(name == "purchase").then(purchase).when(name == "refund").then(refund)


def _event_revenue() -> pl.Expr:
    money = "ecommerce"
    return _by_event(
        pl.coalesce(_field(money, "purchase_revenue_in_usd"), _field(money, "purchase_revenue")),
        pl.coalesce(_field(money, "refund_value_in_usd"), _field(money, "refund_value")),
    )


def _item_revenue(price: pl.Expr, quantity: pl.Expr) -> pl.Expr:
    # Text in, text out: a malformed amount must reach validation as written (bad_revenue).
    amount = price.cast(pl.Float64, strict=False) * quantity.cast(pl.Float64, strict=False)
    line_total = amount.cast(pl.String)
    return _by_event(
        pl.coalesce(_field("_item", "item_revenue_in_usd"), _field("_item", "item_revenue"),
                    line_total),
        pl.coalesce(_field("_item", "item_refund_in_usd"), _field("_item", "item_refund"),
                    line_total),
    )  # fmt: skip


def flatten_events(records: pl.DataFrame) -> pl.DataFrame:
    """One record per (event, item) from GA4 ``records`` (see ``ga4_records.GA4_FIELDS``)."""
    events = records.select(
        "event_timestamp",
        "event_name",
        "user_pseudo_id",
        "user_id",
        _session_id().alias("session_id"),
        _present(_field("ecommerce", "transaction_id")).alias("transaction_id"),
        _event_revenue().alias("_event_revenue"),
        pl.col("items").alias("_item"),
        LINE_COLUMN,
        RAW_COLUMN,
    ).explode("_item", empty_as_null=True, keep_nulls=True)  # itemless: one row, null item
    price = pl.coalesce(_field("_item", "price_in_usd"), _field("_item", "price"))
    quantity = _field("_item", "quantity")
    has_item = pl.col("_item").is_not_null()
    return events.select(
        "event_timestamp",
        "event_name",
        "user_pseudo_id",
        "user_id",
        "session_id",
        _present(_field("_item", "item_id")).alias("item_id"),
        _present(_field("_item", "item_category")).alias("item_category"),
        price.alias("price"),
        quantity.alias("quantity"),
        pl.when(has_item)
        .then(_item_revenue(price, quantity))
        .otherwise(pl.col("_event_revenue"))
        .alias("revenue"),
        "transaction_id",
        LINE_COLUMN,
        RAW_COLUMN,
    )


def iter_ga4(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    """Flattened batches of a GA4 export; ``batch_rows`` counts events, not item rows."""
    for records, unreadable in iter_ga4_records(path, batch_rows):
        yield RawBatch(flatten_events(records), unreadable)


def latest_consent(records: pl.DataFrame) -> pl.DataFrame:
    """Per visitor, the ads consent of their latest event (ties: the later line wins).

    Columns: ``CONTACT_COLUMNS`` plus ``LINE_COLUMN``. GA4 knows no email status.
    Events without a visitor or a readable timestamp say nothing about anyone's consent.
    """
    ads = _field("privacy_info", "ads_storage").str.strip_chars().str.to_lowercase()
    consent = (
        pl.when(ads == "yes")
        .then(pl.lit(AdsConsent.GRANTED.value))
        .when(ads == "no")
        .then(pl.lit(AdsConsent.DENIED.value))
        .otherwise(pl.lit(AdsConsent.UNKNOWN.value))
    )
    visitor = pl.col("user_pseudo_id").str.strip_chars()
    time_spec = TimeSpec(format="unix_us")
    candidates = records.select(
        pl.when(visitor.str.len_bytes() > 0).then(visitor).alias("visitor_id"),
        pl.lit(EmailStatus.UNKNOWN.value).alias("email_status"),
        consent.alias("ads_consent"),
        parse_event_time(pl.col("event_timestamp"), pl.String(), time_spec).alias("updated_at"),
        LINE_COLUMN,
    )
    return _latest(candidates.drop_nulls(["visitor_id", "updated_at"]))


def _latest(consents: pl.DataFrame) -> pl.DataFrame:
    return consents.sort("updated_at", LINE_COLUMN).unique(
        "visitor_id", keep="last", maintain_order=True
    )


def read_ga4_consent(path: Path, batch_rows: int = _CONSENT_BATCH_ROWS) -> pl.DataFrame:
    """The contactability rows (``CONTACT_SCHEMA``) a GA4 export implies, one per visitor.

    ``privacy_info.ads_storage`` Yes -> granted, No -> denied, anything else -> unknown.
    Unreadable lines are skipped here; ``iter_ga4`` reports them.
    """
    partial = [latest_consent(records) for records, _ in iter_ga4_records(path, batch_rows)]
    if not partial:
        return pl.DataFrame(schema=CONTACT_SCHEMA)
    return (
        _latest(pl.concat(partial))  # line numbers grow across batches: ties still resolve
        .select(CONTACT_COLUMNS)
        .sort("visitor_id")
        .cast(CONTACT_SCHEMA)  # type: ignore[arg-type]
    )
