"""Read delimited text and Parquet files in batches, as source columns, losing no line.

CSV is cut into blocks of whole lines and each block parsed by Arrow, several blocks at a
time, every column as text; a line whose field count does not match the header is handed
back as unreadable (with its text and line number) instead of failing the file.
"""

from __future__ import annotations

import csv
import functools
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.ingest.batch import LINE_COLUMN, IngestError, RawBatch, unreadable_lines
from features.ingest.blocks import TextBlock, iter_blocks
from features.ingest.lines import open_binary
from features.ingest.mapping import SourceMapping
from features.ingest.validate import FAST_TIME

#: Blocks are parsed two at a time (the machine this is sized for has two cores); a block
#: of 16 MB is ~150k events, large enough that per-block overhead does not show.
_BLOCK_BYTES = 16 << 20
_MIN_BLOCK_BYTES = 1 << 16
_BYTES_PER_ROW = 128
_PARSE_THREADS = 2


def check_columns(path: Path, found: list[str], expected: list[str]) -> None:
    """Fail fast when a file lacks the columns its mapping reads."""
    missing = [c for c in expected if c not in found]
    if missing:
        raise IngestError(
            f"{path}: columns do not match the chosen format. "
            f"Expected {expected}; found {found}; missing {missing}. "
            "Check --format/--mapping, the delimiter and the header line."
        )


def _parse_options(mapping: SourceMapping, header: list[str]) -> dict[str, Any]:
    return {
        "read_options": pacsv.ReadOptions(
            column_names=header, encoding=mapping.encoding, use_threads=False
        ),
        "convert_options": pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            null_values=[""],  # Arrow would also null "NA", "NaN", "null": data
            quoted_strings_can_be_null=False,
            auto_dict_encode=False,
        ),
    }


def _parse_block(
    path: Path, block: TextBlock, mapping: SourceMapping, options: dict[str, Any]
) -> RawBatch:
    """One block's records, each with its physical line; lines that do not split into the
    header's fields are handed back as unreadable, with their line.

    Arrow numbers an invalid row by its ordinal among the block's non-blank lines, which
    the block maps to physical lines: exact line numbers without a single-threaded parse.
    """
    invalid: list[tuple[int, str, str, str]] = []
    lines = block.nonblank_lines()

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if "\n" in row.text or "\r" in row.text or row.number is None:
            return "error"  # a record across lines (stray quote): the file is damaged
        detail = f"expected {row.expected_columns} fields, found {row.actual_columns}"
        invalid.append((int(lines[row.number - 1]), "unparseable_line", detail, row.text))
        return "skip"

    parse = pacsv.ParseOptions(
        delimiter=mapping.delimiter, invalid_row_handler=on_invalid, newlines_in_values=False
    )
    try:
        table = pacsv.read_csv(pa.py_buffer(block.data), parse_options=parse, **options)
    except (pa.ArrowInvalid, UnicodeError, IndexError) as err:
        raise IngestError(f"{path}: unreadable after line ~{block.first_line}: {err}") from err
    bad = np.asarray([line for line, *_ in invalid], dtype=np.int64)
    good = lines[~np.isin(lines, bad)] if bad.size else lines
    if good.size != table.num_rows:
        # A stray quote makes Arrow read the lines up to the next quote as one value
        # (whatever newlines_in_values says), and a lone CR is a line break to Arrow but
        # not to the block: lines would vanish or drift, so the fast path gives up.
        raise IngestError(f"{path}: records do not match lines after line ~{block.first_line}")
    frame = pl.from_arrow(_with_iso_times(table, mapping))
    assert isinstance(frame, pl.DataFrame)
    return RawBatch(frame.with_columns(pl.Series(LINE_COLUMN, good)), unreadable_lines(invalid))


def _with_iso_times(table: pa.Table, mapping: SourceMapping) -> pa.Table:
    """Add the event times parsed by Arrow's ISO 8601 parser, here in the parse threads
    (``validate.FAST_TIME``); a block with any value it rejects is left to validation."""
    column = mapping.columns.get("event_time")
    if mapping.time.format != "iso" or column is None:
        return table
    try:
        parsed = pc.cast(table.column(column), pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return table
    return table.append_column(FAST_TIME, parsed)


def _in_order(jobs: Iterator[Callable[[], RawBatch]], workers: int) -> Iterator[RawBatch]:
    """Run ``jobs`` on ``workers`` threads (Arrow parses without the GIL), yielding results
    in order, with at most ``workers + 1`` in flight."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="csv-parse") as pool:
        running: deque[Future[RawBatch]] = deque()
        for job in jobs:
            running.append(pool.submit(job))
            if len(running) > workers:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()


def _merge(batches: list[RawBatch]) -> RawBatch:
    records = [b.records for b in batches]
    if len({FAST_TIME in r.columns for r in records}) > 1:  # some blocks are not plain ISO
        records = [r.drop(FAST_TIME, strict=False) for r in records]
    return RawBatch(pl.concat(records, rechunk=True), pl.concat([b.unreadable for b in batches]))


def iter_csv(path: Path, mapping: SourceMapping, batch_rows: int) -> Iterator[RawBatch]:
    """Batches of about ``batch_rows`` records of a delimited text file (plain or gzip).

    The file is cut into blocks of whole lines, parsed by Arrow on several threads.
    """
    header = _header(path, mapping)
    check_columns(path, header, mapping.source_columns)
    options = _parse_options(mapping, header)
    block_bytes = min(_BLOCK_BYTES, max(_MIN_BLOCK_BYTES, batch_rows * _BYTES_PER_ROW))
    jobs = (
        functools.partial(_parse_block, path, block, mapping, options)
        for block in iter_blocks(path, block_bytes, skip_lines=1)
    )
    pending: list[RawBatch] = []
    rows = 0
    for parsed in _in_order(jobs, workers=_PARSE_THREADS):
        pending.append(parsed)
        rows += parsed.rows_read
        if rows >= batch_rows:
            yield _merge(pending)
            pending, rows = [], 0
    if pending:
        yield _merge(pending)


def _header(path: Path, mapping: SourceMapping) -> list[str]:
    """Column names from the first line, split the way the data lines will be."""
    try:
        with open_binary(path) as stream:
            head = stream.read(1 << 20)
    except (OSError, EOFError, zlib.error) as err:
        raise IngestError(f"{path}: cannot read as {mapping.format}: {err}") from err
    text = (
        head.split(b"\n", 1)[0]
        .decode(mapping.encoding, errors="replace")
        .lstrip("\ufeff")
        .rstrip("\r")
    )
    if not text:
        raise IngestError(f"{path}: empty file, expected a header line")
    return next(csv.reader([text], delimiter=mapping.delimiter))


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
