"""Decode GA4 BigQuery export rows (JSON lines or Parquet) into one typed frame shape.

Both inputs become the same columns, ``GA4_FIELDS`` plus ``LINE_COLUMN`` and
``RAW_COLUMN``, with every scalar as text. Text is deliberate: BigQuery's JSON export
writes INT64 as strings and Parquet has native numbers, and parsing numbers belongs to the
shared validation, which quarantines a bad value with its reason instead of nulling it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from polars.datatypes import DataTypeClass

from features.ingest.batch import (
    LINE_COLUMN,
    QUARANTINE_SCHEMA,
    RAW_COLUMN,
    IngestError,
    unreadable_lines,
)
from features.ingest.lines import UNPARSEABLE, iter_lines, starts_with
from features.ingest.tabular import check_columns

_TEXT = pl.String()
_PARAM_VALUE = pl.Struct(
    {"string_value": _TEXT, "int_value": _TEXT, "float_value": _TEXT, "double_value": _TEXT}
)
_ITEM_FIELDS = (
    "item_id", "item_name", "item_category", "price", "price_in_usd", "quantity",
    "item_revenue", "item_revenue_in_usd", "item_refund", "item_refund_in_usd",
)  # fmt: skip
_ECOMMERCE_FIELDS = (
    "transaction_id", "purchase_revenue", "purchase_revenue_in_usd",
    "refund_value", "refund_value_in_usd",
)  # fmt: skip
_PRIVACY_FIELDS = ("analytics_storage", "ads_storage", "uses_transient_token")

#: The GA4 export fields the reader uses, with the dtype each is decoded to.
GA4_FIELDS: dict[str, pl.DataType] = {
    "event_timestamp": _TEXT,
    "event_name": _TEXT,
    "user_pseudo_id": _TEXT,
    "user_id": _TEXT,
    "event_params": pl.List(pl.Struct({"key": _TEXT, "value": _PARAM_VALUE})),
    "items": pl.List(pl.Struct(dict.fromkeys(_ITEM_FIELDS, _TEXT))),
    "ecommerce": pl.Struct(dict.fromkeys(_ECOMMERCE_FIELDS, _TEXT)),
    "privacy_info": pl.Struct(dict.fromkeys(_PRIVACY_FIELDS, _TEXT)),
}
REQUIRED_FIELDS: tuple[str, ...] = ("event_timestamp", "event_name", "user_pseudo_id")
_RECORD = pl.Struct(GA4_FIELDS)
_PARQUET_MAGIC = b"PAR1"
Unreadable = tuple[int, str, str, str]
#: Lines per chunk when a batch must be searched for its bad lines.
_FALLBACK_CHUNK_ROWS = 1_000


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]


def _decode_all(lines: pl.DataFrame) -> tuple[pl.DataFrame, list[Unreadable]]:
    """Decode every line at once; raises ``ComputeError`` if any line does not fit."""
    decoded = lines.with_columns(pl.col(RAW_COLUMN).str.json_decode(_RECORD).alias("_event"))
    not_object = decoded.filter(pl.col("_event").is_null()).select(LINE_COLUMN, RAW_COLUMN)
    bad = [(line, UNPARSEABLE, "expected a JSON object, found null", raw)
           for line, raw in not_object.iter_rows()]  # fmt: skip
    records = decoded.filter(pl.col("_event").is_not_null()).unnest("_event")
    return records.select(*GA4_FIELDS, LINE_COLUMN, RAW_COLUMN), bad


def _json_problem(raw: str) -> str | None:
    """Why ``raw`` is not a JSON object, in the words of Python's parser; None if it is."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as err:
        return f"invalid JSON: {err}"
    if not isinstance(value, dict):
        return f"expected a JSON object, found {json.dumps(value)[:40]}"
    return None


def _decode_chunk(lines: pl.DataFrame) -> tuple[pl.DataFrame, list[Unreadable]]:
    """Decode a chunk known to hold a bad line: Python's parser finds invalid JSON (with a
    position), Polars decodes the rest; valid JSON of another shape is found line by line."""
    bad: list[Unreadable] = []
    good: list[int] = []
    for index, (line, raw) in enumerate(lines.select(LINE_COLUMN, RAW_COLUMN).iter_rows()):
        problem = _json_problem(raw)
        if problem is None:
            good.append(index)
        else:
            bad.append((line, UNPARSEABLE, problem, raw))
    objects = lines[good]
    try:
        records, nulls = _decode_all(objects)
    except pl.exceptions.ComputeError:
        records, nulls = _decode_one_by_one(objects)
    return records, bad + nulls


def _decode_one_by_one(objects: pl.DataFrame) -> tuple[pl.DataFrame, list[Unreadable]]:
    """Decode JSON objects one at a time, to name those whose shape is not GA4's."""
    parts = [_decode_all(objects.clear())[0]]  # so that concat has the schema with no rows
    bad: list[Unreadable] = []
    for index in range(objects.height):
        row = objects.slice(index, 1)
        try:
            parts.append(_decode_all(row)[0])
        except pl.exceptions.ComputeError as err:
            line, raw = row.select(LINE_COLUMN, RAW_COLUMN).row(0)
            bad.append((line, UNPARSEABLE, f"not in GA4 export shape: {_first_line(err)}", raw))
    return pl.concat(parts), bad


def _decode_isolating(lines: pl.DataFrame) -> tuple[pl.DataFrame, list[Unreadable]]:
    """Slow path for a batch with a bad line: only the chunks that fail are searched."""
    parts: list[pl.DataFrame] = []
    bad: list[Unreadable] = []
    for start in range(0, max(lines.height, 1), _FALLBACK_CHUNK_ROWS):
        chunk = lines.slice(start, _FALLBACK_CHUNK_ROWS)
        try:
            records, chunk_bad = _decode_all(chunk)
        except pl.exceptions.ComputeError:
            records, chunk_bad = _decode_chunk(chunk)
        parts.append(records)
        bad.extend(chunk_bad)
    return pl.concat(parts), bad


def decode_lines(lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """GA4 records and unreadable lines (``QUARANTINE_SCHEMA``) from JSON ``lines``.

    Fast path: Polars decodes the whole batch. One bad line makes that fail, so the batch
    is then decoded in chunks, and only a failing chunk is checked line by line.
    """
    try:
        records, bad = _decode_all(lines)
    except pl.exceptions.ComputeError:
        records, bad = _decode_isolating(lines)
    bad.sort()
    return records, unreadable_lines(bad)


AnyDataType = pl.DataType | DataTypeClass


def _conform(expr: pl.Expr, actual: AnyDataType, target: AnyDataType, name: str) -> pl.Expr:
    """``expr`` (of dtype ``actual``) reshaped to ``target``: fields by name, scalars as text."""
    if isinstance(target, pl.Struct):
        if not isinstance(actual, pl.Struct):
            raise IngestError(f"GA4 field {name} should be a struct, found {actual}")
        have = {field.name: field.dtype for field in actual.fields}
        fields = [
            _conform(expr.struct.field(f.name), have[f.name], f.dtype, f"{name}.{f.name}")
            if f.name in have
            else pl.lit(None, dtype=f.dtype)
            for f in target.fields
        ]
        named = [field.alias(f.name) for field, f in zip(fields, target.fields, strict=True)]
        return pl.when(expr.is_not_null()).then(pl.struct(named))
    if isinstance(target, pl.List):
        if not isinstance(actual, pl.List | pl.Array):
            raise IngestError(f"GA4 field {name} should be a list, found {actual}")
        inner = _conform(pl.element(), actual.inner, target.inner, name)
        return expr.cast(pl.List(actual.inner)).list.eval(inner)
    if isinstance(actual, pl.Struct | pl.List | pl.Array):
        raise IngestError(f"GA4 field {name} should be a scalar, found {actual}")
    return expr.cast(pl.String)


def conform_parquet(frame: pl.DataFrame, first_row: int) -> pl.DataFrame:
    """GA4 records from a Parquet batch; ``RAW_COLUMN`` is the original row as JSON."""
    columns = [
        _conform(pl.col(name), frame.schema[name], dtype, name)
        if name in frame.columns
        else pl.lit(None, dtype=dtype)
        for name, dtype in GA4_FIELDS.items()
    ]
    rows = pl.int_range(first_row, first_row + frame.height, dtype=pl.Int64)
    return frame.select(
        *(column.alias(name) for column, name in zip(columns, GA4_FIELDS, strict=True)),
        rows.alias(LINE_COLUMN),
        pl.struct(frame.columns).struct.json_encode().alias(RAW_COLUMN),
    )


def _parquet_records(path: Path, batch_rows: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise IngestError(f"{path}: not a readable Parquet file: {err}") from err
    check_columns(path, parquet.schema_arrow.names, list(REQUIRED_FIELDS))
    next_row = 1
    # All columns, not just the used ones: RAW_COLUMN keeps the whole row for quarantine.
    for arrow_batch in parquet.iter_batches(batch_size=batch_rows):
        frame = pl.from_arrow(arrow_batch)
        assert isinstance(frame, pl.DataFrame)
        try:
            yield conform_parquet(frame, next_row), unreadable_lines([])
        except IngestError as err:
            raise IngestError(f"{path}: {err}") from err
        next_row += frame.height


def _json_records(path: Path, batch_rows: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    for batch in iter_lines(path, batch_rows):
        records, bad = decode_lines(batch.lines)
        unreadable = pl.concat([batch.undecodable, bad]).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
        yield records, unreadable


def iter_ga4_records(path: Path, batch_rows: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """(records, unreadable lines) batches of a GA4 export: Parquet, or JSON lines (gzip ok)."""
    if starts_with(path, _PARQUET_MAGIC):
        return _parquet_records(path, batch_rows)
    return _json_records(path, batch_rows)
