"""Read Segment / RudderStack dumps (JSON lines, plain or gzip) as tabular batches.

One JSON object per line, as Segment's S3 destination and RudderStack's object-storage
dumps write them (the API's camelCase keys, or a warehouse's snake_case ones); a line
holding a ``batch`` call is its calls. ``features.ingest.segment`` maps the calls to
records; ``mappings/segment.toml`` then validates them through the shared
``validate_batch``, so quarantine reasons are those of every other format.

Two passes over the file: the first collects only the (anonymousId, userId) links, so
that the identity rule (``IdentityMap``) sees the whole file before any call is mapped;
memory is the ids, not the events. Every record keeps its call's original line in
``RAW_COLUMN``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from features.ingest.batch import LINE_COLUMN, QUARANTINE_SCHEMA, RAW_COLUMN, RawBatch
from features.ingest.batch import unreadable_lines as unreadable_frame
from features.ingest.lines import UNPARSEABLE, iter_lines
from features.ingest.mapping import SourceMapping, builtin_mapping
from features.ingest.segment import (
    SEGMENT_COLUMNS,
    IdentityMap,
    Record,
    anonymous_id,
    call_records,
    identity_link,
    unbatched,
    user_id,
)

_RECORD_SCHEMA = {
    **dict.fromkeys(SEGMENT_COLUMNS, pl.String()),
    LINE_COLUMN: pl.Int64(),
    RAW_COLUMN: pl.String(),
}


def segment_mapping() -> SourceMapping:
    """The packaged mapping from the records' columns to canonical events."""
    return builtin_mapping("segment")


def _calls(raw: str) -> list[dict[str, Any]] | str:
    """The calls on one line, or why the line is not one (for the quarantine file)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return f"invalid JSON: {err}"
    calls = unbatched(body)
    if not calls or not all(isinstance(call, dict) for call in calls):
        return f"expected a JSON object, found {orjson.dumps(body)[:40].decode(errors='replace')}"
    return calls


def _identities(path: Path, batch_rows: int) -> IdentityMap:
    links: list[tuple[str | None, str, str]] = []
    for batch in iter_lines(path, batch_rows):
        for raw in batch.lines.get_column(RAW_COLUMN):
            calls = _calls(raw)
            if isinstance(calls, str):
                continue
            links.extend(link for call in calls if (link := identity_link(call)) is not None)
    return IdentityMap.from_links(links)


def _batch(lines: pl.DataFrame, undecodable: pl.DataFrame, identities: IdentityMap) -> RawBatch:
    records: list[Record] = []
    bad: list[tuple[int, str, str, str]] = []
    ignored: Counter[str] = Counter()
    for line, raw in lines.select(LINE_COLUMN, RAW_COLUMN).iter_rows():
        calls = _calls(raw)
        if isinstance(calls, str):
            bad.append((line, UNPARSEABLE, calls, raw))
            continue
        for call in calls:
            visitor = identities.visitor(anonymous_id(call), user_id(call))
            rows, ignored_as = call_records(call, visitor)
            if ignored_as is not None:
                ignored[ignored_as] += 1
            records.extend({**row, LINE_COLUMN: line, RAW_COLUMN: raw} for row in rows)
    frame = pl.DataFrame(records, schema=_RECORD_SCHEMA)
    unreadable = pl.concat([undecodable, unreadable_frame(bad)]).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    return RawBatch(frame, unreadable, dict(ignored))


def iter_segment(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    """Record batches of a Segment / RudderStack dump; ``batch_rows`` counts lines."""
    identities = _identities(path, batch_rows)
    for batch in iter_lines(path, batch_rows):
        yield _batch(batch.lines, batch.undecodable, identities)
