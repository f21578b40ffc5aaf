"""What a reader hands to validation: a batch of source records, and the lines it could not read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

#: Column every reader adds to its batches: the physical line (text files) or 1-based
#: record number (Parquet) of the row in its file, for messages and the quarantine file.
LINE_COLUMN = "_line"
#: Optional column a reader may add with the record's original text (e.g. a JSON line);
#: when absent, quarantine stores the record's source columns as JSON.
RAW_COLUMN = "_raw"

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "line": pl.Int64(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw": pl.String(),
}


@dataclass(frozen=True)
class RawBatch:
    """Source records with their source column names, plus unreadable lines.

    ``records`` holds the source columns (strings for text formats, native types for
    Parquet) and ``LINE_COLUMN``. ``unreadable`` follows ``QUARANTINE_SCHEMA``: lines the
    reader could not split into records, already carrying their reason. ``ignored``
    counts, by their name, the source events the format knowingly leaves out (a Segment
    ``identify`` call, an event name outside the e-commerce spec): read, not errors.
    """

    records: pl.DataFrame
    unreadable: pl.DataFrame
    ignored: Mapping[str, int] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return self.records.height + self.unreadable.height + sum(self.ignored.values())


def unreadable_lines(lines: list[tuple[int, str, str, str]]) -> pl.DataFrame:
    """Build the ``unreadable`` frame from (line, reason, detail, raw text) tuples."""
    return pl.DataFrame(lines, schema=QUARANTINE_SCHEMA, orient="row")


class IngestError(Exception):
    """A file that cannot be ingested at all; the message names the file and the problem."""
