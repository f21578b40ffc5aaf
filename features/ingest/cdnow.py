"""Read the CDNOW purchase log: whitespace-separated ``customer_id date n_cds dollar_value``.

This reader only splits lines into source columns (all text); ``mappings/cdnow.toml`` then
maps, parses and validates them through the shared ``validate_batch``. Two layouts exist:
the master file (4 fields, optional header line ``customer_id date number_of_cds
dollar_value``) and the 1/10 sample (5 fields: master id, sample id, date, n_cds, value).
The layout is decided once per file, from the first batch, so one stray line cannot switch
it; the master id is the visitor in both, so sample and master events agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from features.ingest.batch import LINE_COLUMN, QUARANTINE_SCHEMA, RAW_COLUMN, RawBatch
from features.ingest.lines import UNPARSEABLE, iter_lines
from features.ingest.mapping import SourceMapping, builtin_mapping

CDNOW_COLUMNS: tuple[str, ...] = ("customer_id", "date", "number_of_cds", "dollar_value")

# The date must be 8 digits here: strftime parsing of "%Y%m%d" accepts "1997011" as a date.
_TAIL = r"\s+(?P<date>\d{8})\s+(?P<number_of_cds>\S+)\s+(?P<dollar_value>\S+)\s*$"
_LAYOUTS: dict[int, str] = {
    4: r"^\s*(?P<customer_id>\S+)" + _TAIL,
    5: r"^\s*(?P<customer_id>\S+)\s+\S+" + _TAIL,
}
_EXPECTED = {
    4: "expected `customer_id date(YYYYMMDD) number_of_cds dollar_value`",
    5: "expected `customer_id sample_id date(YYYYMMDD) number_of_cds dollar_value`",
}


def cdnow_mapping() -> SourceMapping:
    """The packaged mapping from the split columns to canonical purchase events."""
    return builtin_mapping("cdnow")


def _is_header() -> pl.Expr:
    """Line 1 naming the columns (the master file has one; the sample does not)."""
    first_field = pl.col(RAW_COLUMN).str.strip_chars().str.split(" ").list.first()
    return (pl.col(LINE_COLUMN) == 1) & (first_field.str.to_lowercase() == "customer_id")


def detect_layout(lines: pl.DataFrame) -> int:
    """Field count (4 or 5) most lines of ``lines`` have; 4 when neither is in the majority."""
    counts = lines.get_column(RAW_COLUMN).str.count_matches(r"\S+")
    four, five = int((counts == 4).sum()), int((counts == 5).sum())
    return 5 if five > four else 4


def split_lines(lines: pl.DataFrame, layout: int) -> RawBatch:
    """Split ``lines`` (``LINE_COLUMN``, ``RAW_COLUMN``) into the CDNOW text columns."""
    fields = pl.col(RAW_COLUMN).str.extract_groups(_LAYOUTS[layout])
    split = lines.select(LINE_COLUMN, RAW_COLUMN, fields.alias("_fields")).unnest("_fields")
    matched = pl.col("customer_id").is_not_null()
    records = split.filter(matched).select(*CDNOW_COLUMNS, LINE_COLUMN, RAW_COLUMN)
    unreadable = split.filter(~matched).select(
        pl.col(LINE_COLUMN).alias("line"),
        pl.lit(UNPARSEABLE).alias("reason"),
        pl.lit(_EXPECTED[layout]).alias("detail"),
        pl.col(RAW_COLUMN).alias("raw"),
    )
    return RawBatch(records, unreadable.cast(QUARANTINE_SCHEMA))  # type: ignore[arg-type]


def iter_cdnow(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    """Batches of a CDNOW file (plain or gzip); the header line is not a record."""
    layout: int | None = None
    for batch in iter_lines(path, batch_rows):
        lines = batch.lines.filter(~_is_header())
        if layout is None and not lines.is_empty():
            layout = detect_layout(lines)
        split = split_lines(lines, layout or 4)
        yield RawBatch(split.records, pl.concat([batch.undecodable, split.unreadable]))
