"""Read delimited text and Parquet files in batches, as source columns, losing no line.

CSV is parsed by Arrow's multithreaded reader with every column as text; a line whose
field count does not match the header is handed back as unreadable (with its text and
line number) instead of failing the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.ingest.batch import LINE_COLUMN, IngestError, RawBatch, unreadable_lines
from features.ingest.mapping import SourceMapping

_BLOCK_BYTES = 64 << 20


def check_columns(path: Path, found: list[str], expected: list[str]) -> None:
    """Fail fast when a file lacks the columns its mapping reads."""
    missing = [c for c in expected if c not in found]
    if missing:
        raise IngestError(
            f"{path}: columns do not match the chosen format. "
            f"Expected {expected}; found {found}; missing {missing}. "
            "Check --format/--mapping, the delimiter and the header line."
        )


def _physical_lines(
    row_numbers: np.ndarray, invalid_lines: list[int], first_data_line: int
) -> np.ndarray:
    """Map 0-based ordinals of readable rows to physical line numbers, skipping bad lines."""
    bad = np.sort(np.asarray(invalid_lines, dtype=np.int64))
    # Position among readable rows at which each bad line sits.
    bad_positions = bad - first_data_line - np.arange(bad.size)
    shift = np.searchsorted(bad_positions, row_numbers, side="right")
    return row_numbers + first_data_line + shift


def iter_csv(path: Path, mapping: SourceMapping, batch_rows: int) -> Iterator[RawBatch]:
    """Batches of a delimited text file (plain or compressed, by extension)."""
    invalid: list[tuple[int, str, str, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if "\n" in row.text or "\r" in row.text:
            return "error"  # a record across lines (stray quote): see _spans_lines
        line = row.number if row.number is not None else -1
        detail = f"expected {row.expected_columns} fields, found {row.actual_columns}"
        invalid.append((line, "unparseable_line", detail, row.text))
        return "skip"

    try:
        header = _header(path, mapping)
        check_columns(path, header, mapping.source_columns)
        reader = pacsv.open_csv(
            pa.input_stream(str(path), compression="detect"),
            read_options=pacsv.ReadOptions(
                block_size=_BLOCK_BYTES, encoding=mapping.encoding, use_threads=False
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=mapping.delimiter,
                invalid_row_handler=on_invalid,
                newlines_in_values=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=True,
                null_values=[""],  # Arrow would also null "NA", "NaN", "null": data
                quoted_strings_can_be_null=False,
                auto_dict_encode=False,
            ),
        )
    except (pa.ArrowInvalid, OSError, UnicodeError) as err:
        raise IngestError(f"{path}: cannot read as {mapping.format}: {err}") from err
    found = reader.schema.names
    read_so_far = 0
    invalid_before: list[int] = []
    seen = 0  # invalid lines already handed out in earlier batches
    pending: list[pl.DataFrame] = []
    pending_rows = 0
    while True:
        try:
            arrow_batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, UnicodeError) as err:
            raise IngestError(f"{path}: unreadable after line ~{read_so_far + 1}: {err}") from err
        invalid_before.extend(line for line, *_ in invalid[len(invalid_before) - seen :])
        frame = pl.from_arrow(arrow_batch)
        assert isinstance(frame, pl.DataFrame)
        if _spans_lines(frame):
            # A stray quote makes Arrow read the lines up to the next quote as one value
            # (whatever newlines_in_values says): lines would vanish into one record and line
            # numbers drift. Events never hold a line break, so the file is damaged.
            raise IngestError(f"{path}: a quoted value spans lines after line ~{read_so_far + 1}")
        ordinals = np.arange(read_so_far, read_so_far + frame.height, dtype=np.int64)
        lines = _physical_lines(ordinals, invalid_before, first_data_line=2)
        read_so_far += frame.height
        pending.append(frame.with_columns(pl.Series(LINE_COLUMN, lines)))
        pending_rows += frame.height
        if pending_rows >= batch_rows or invalid:
            yield RawBatch(pl.concat(pending, rechunk=True), unreadable_lines(invalid))
            seen += len(invalid)
            pending, pending_rows, invalid = [], 0, []
    if pending or invalid:
        records = pl.concat(pending, rechunk=True) if pending else _empty_records(found)
        yield RawBatch(records, unreadable_lines(invalid))


def _spans_lines(frame: pl.DataFrame) -> bool:
    """Whether any value holds a line break (a record read across several lines)."""
    spans = frame.select(pl.any_horizontal(pl.all().str.contains(r"[\r\n]").any()))
    return bool(spans.item())


def _header(path: Path, mapping: SourceMapping) -> list[str]:
    """Column names from the first line, split the way the data lines will be."""
    with pa.input_stream(str(path), compression="detect") as stream:
        head = stream.read(1 << 20)
    text = (
        head.split(b"\n", 1)[0]
        .decode(mapping.encoding, errors="replace")
        .lstrip("\ufeff")
        .rstrip("\r")
    )
    if not text:
        raise IngestError(f"{path}: empty file, expected a header line")
    return next(csv.reader([text], delimiter=mapping.delimiter))


def _empty_records(columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame(schema={**{c: pl.String for c in columns}, LINE_COLUMN: pl.Int64})


def iter_parquet(path: Path, mapping: SourceMapping, batch_rows: int) -> Iterator[RawBatch]:
    """Batches of a Parquet file, with native column types; line = 1-based row number."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise IngestError(f"{path}: not a readable Parquet file: {err}") from err
    found = parquet.schema_arrow.names
    check_columns(path, found, mapping.source_columns)
    offset = 0
    for arrow_batch in parquet.iter_batches(batch_size=batch_rows):
        frame = pl.from_arrow(arrow_batch)
        assert isinstance(frame, pl.DataFrame)
        rows = pl.int_range(offset + 1, offset + frame.height + 1, eager=True, dtype=pl.Int64)
        offset += frame.height
        yield RawBatch(frame.with_columns(rows.alias(LINE_COLUMN)), unreadable_lines([]))


def is_parquet(path: Path) -> bool:
    """Whether ``path`` starts with Parquet's magic bytes (whatever its name or mapping)."""
    try:
        with path.open("rb") as file:
            return file.read(4) == b"PAR1"
    except OSError:
        return False


def iter_tabular(path: Path, mapping: SourceMapping, batch_rows: int) -> Iterator[RawBatch]:
    """A mapping's columns from CSV or Parquet: a Parquet file is read as Parquet even under
    a mapping written for CSV, so one mapping serves both exports of a source."""
    reader = iter_parquet if mapping.format == "parquet" or is_parquet(path) else iter_csv
    return reader(path, mapping, batch_rows)
