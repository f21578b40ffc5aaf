"""Read a text file (plain or gzip) as batches of numbered lines, for line-oriented readers.

The readers of vendor formats that are not CSV (GA4 JSON lines, CDNOW fixed-width text)
split lines themselves; this module only gets the lines out of the file without losing
one. A line that is not UTF-8 is handed back as unreadable instead of failing the file.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BufferedIOBase
from itertools import islice
from pathlib import Path

import polars as pl

from features.ingest.batch import LINE_COLUMN, RAW_COLUMN, IngestError, unreadable_lines

_GZIP_MAGIC = b"\x1f\x8b"
UNPARSEABLE = "unparseable_line"


@dataclass(frozen=True)
class LineBatch:
    """Consecutive lines of a file.

    ``lines`` has ``LINE_COLUMN`` (1-based physical line number) and ``RAW_COLUMN`` (the
    line's text without its line ending). Blank lines are not records and are left out.
    ``undecodable`` follows ``QUARANTINE_SCHEMA``.
    """

    lines: pl.DataFrame
    undecodable: pl.DataFrame


def starts_with(path: Path, magic: bytes) -> bool:
    """Whether the file's first bytes are ``magic`` (format sniffing, not trusting names)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError as err:
        raise IngestError(f"{path}: cannot open: {err.strerror}") from err


def open_binary(path: Path) -> BufferedIOBase:
    try:
        if starts_with(path, _GZIP_MAGIC):
            return gzip.open(path, "rb")
        return path.open("rb")
    except OSError as err:
        raise IngestError(f"{path}: cannot open: {err.strerror}") from err


def _decode(number: int, raw: bytes) -> str | tuple[int, str, str, str]:
    """The line's text, or an unreadable-line tuple when it is not UTF-8."""
    stripped = raw.rstrip(b"\r\n")
    try:
        text = stripped.decode("utf8")
    except UnicodeDecodeError as err:
        detail = f"not UTF-8 at byte {err.start}"
        return (number, UNPARSEABLE, detail, stripped.decode("utf8", errors="replace"))
    return text.lstrip("\ufeff") if number == 1 else text


def _line_batch(first_line: int, raw_lines: list[bytes]) -> LineBatch:
    numbers: list[int] = []
    texts: list[str] = []
    bad: list[tuple[int, str, str, str]] = []
    for number, raw in enumerate(raw_lines, start=first_line):
        decoded = _decode(number, raw)
        if isinstance(decoded, tuple):
            bad.append(decoded)
        elif decoded.strip():
            numbers.append(number)
            texts.append(decoded)
    lines = pl.DataFrame(
        {LINE_COLUMN: numbers, RAW_COLUMN: texts},
        schema={LINE_COLUMN: pl.Int64, RAW_COLUMN: pl.String},
    )
    return LineBatch(lines, unreadable_lines(bad))


def iter_lines(path: Path, batch_rows: int) -> Iterator[LineBatch]:
    """Batches of up to ``batch_rows`` physical lines; gzip is recognised by its magic bytes."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    next_line = 1
    with open_binary(path) as handle:
        while True:
            try:
                raw_lines = list(islice(handle, batch_rows))
            except (OSError, EOFError, zlib.error) as err:
                raise IngestError(f"{path}: unreadable after line {next_line - 1}: {err}") from err
            if not raw_lines:
                return
            yield _line_batch(next_line, raw_lines)
            next_line += len(raw_lines)
