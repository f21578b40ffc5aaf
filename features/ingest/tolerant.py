"""Read a damaged delimited text file line by line, keeping every line it can and handing
back every other one as unreadable, with its reason. Slow (Python's ``csv`` per line), so
only used when the fast Arrow reader (``features.ingest.tabular``) gives up on a file:

- a line that is not valid text in the file's encoding -> ``bad_encoding``;
- a line that does not split into the header's number of fields -> ``unparseable_line``;
- a compressed file that breaks off (truncated, corrupt stream) -> everything read before
  is kept, and the unreadable rest is one record ``unreadable_tail`` (its lines cannot be
  counted), so that ``rows_read = accepted + quarantined + duplicates`` still holds.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from features.ingest.batch import LINE_COLUMN, RawBatch, unreadable_lines
from features.ingest.lines import UNPARSEABLE, open_binary
from features.ingest.mapping import SourceMapping
from features.ingest.tabular import check_columns

BAD_ENCODING = "bad_encoding"
UNREADABLE_TAIL = "unreadable_tail"
Unreadable = tuple[int, str, str, str]


def _split(text: str, delimiter: str, width: int) -> list[str] | None:
    try:
        fields = next(csv.reader([text], delimiter=delimiter, strict=True), [])
    except csv.Error:
        return None
    return fields if len(fields) == width else None


class _Batcher:
    """Collects parsed rows and unreadable lines into ``RawBatch``es."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.rows: list[list[str | None]] = []
        self.lines: list[int] = []
        self.bad: list[Unreadable] = []

    def add(self, number: int, raw: bytes, mapping: SourceMapping) -> None:
        stripped = raw.rstrip(b"\r\n")
        if not stripped.strip():
            return
        try:
            text = stripped.decode(mapping.encoding)
        except UnicodeDecodeError as err:
            detail = f"not {mapping.encoding} at byte {err.start}"
            self.bad.append((number, BAD_ENCODING, detail, stripped.decode("utf8", "replace")))
            return
        fields = _split(text, mapping.delimiter, len(self.header))
        if fields is None:
            detail = f"does not split into the header's {len(self.header)} fields"
            self.bad.append((number, UNPARSEABLE, detail, text))
            return
        self.rows.append([f if f != "" else None for f in fields])
        self.lines.append(number)

    def batch(self) -> RawBatch:
        schema = {**dict.fromkeys(self.header, pl.String), LINE_COLUMN: pl.Int64}
        columns = list(zip(*self.rows, strict=True)) if self.rows else [()] * len(self.header)
        data = {name: list(values) for name, values in zip(self.header, columns, strict=True)}
        records = pl.DataFrame({**data, LINE_COLUMN: self.lines}, schema=schema)
        out = RawBatch(records, unreadable_lines(self.bad))
        self.rows, self.lines, self.bad = [], [], []
        return out

    def __len__(self) -> int:
        return len(self.lines) + len(self.bad)


def iter_csv_tolerant(path: Path, mapping: SourceMapping, batch_rows: int) -> Iterator[RawBatch]:
    """Batches of a delimited text file (plain or gzip) that never fail on a bad line."""
    with open_binary(path) as handle:
        header = _header(path, handle.readline(), mapping)
        batcher = _Batcher(header)
        number = 1
        while True:
            try:
                raw = handle.readline()
            except (OSError, EOFError, zlib.error) as err:
                batcher.bad.append((number + 1, UNREADABLE_TAIL, f"file breaks off: {err}", ""))
                break
            if not raw:
                break
            number += 1
            batcher.add(number, raw, mapping)
            if len(batcher) >= batch_rows:
                yield batcher.batch()
        if len(batcher):
            yield batcher.batch()


def _header(path: Path, raw: bytes, mapping: SourceMapping) -> list[str]:
    from features.ingest.batch import IngestError

    text = raw.decode(mapping.encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
    if not text:
        raise IngestError(f"{path}: empty file, expected a header line")
    header = next(csv.reader([text], delimiter=mapping.delimiter))
    check_columns(path, header, mapping.source_columns)
    return header
