"""Append canonical events to the partitioned Parquet event lake, idempotently.

Layout: ``<lake>/events/event_date=YYYY-MM-DD/part-<ingest_id>.parquet`` (hive style, so
Polars, DuckDB and Spark read it as one table). Files are written complete under
``<lake>/_staging/`` and then renamed into place, so a reader never sees a half-written
file. An event already in the lake (same canonical content) is a duplicate, not a new row,
which makes re-ingesting a file a no-op.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from features.events.schema import EVENT_COLUMNS, PARTITION_COLUMN
from features.ingest.batch import IngestError

EVENTS_DIR = "events"
STAGING_DIR = "_staging"
MANIFEST_FILE = "_ingests.jsonl"
_HASH = "_event_hash"


def event_hash(events: pl.DataFrame) -> pl.Series:
    """A 64-bit fingerprint of each event's canonical content (stable within a Polars version)."""
    return events.select(pl.struct(EVENT_COLUMNS).hash(seed=0).alias(_HASH)).to_series()


def partition_path(lake_dir: Path, day: date) -> Path:
    return lake_dir / EVENTS_DIR / f"{PARTITION_COLUMN}={day.isoformat()}"


def _existing_hashes(lake_dir: Path, days: list[date]) -> pl.Series:
    files = [f for day in days for f in sorted(partition_path(lake_dir, day).glob("*.parquet"))]
    if not files:
        return pl.Series(_HASH, [], dtype=pl.UInt64)
    existing = pl.read_parquet(files, columns=list(EVENT_COLUMNS))
    return event_hash(existing)


@dataclass(frozen=True)
class Deduplicated:
    events: pl.DataFrame
    duplicates: int


def drop_duplicates(events: pl.DataFrame, lake_dir: Path) -> Deduplicated:
    """Keep the first copy of each event in ``events`` that the lake does not already hold."""
    hashes = event_hash(events)
    keep = hashes.is_first_distinct()
    days = events.select(pl.col("event_time").dt.date().unique()).to_series().to_list()
    keep &= ~hashes.is_in(_existing_hashes(lake_dir, days).implode())
    unique = events.filter(keep)
    return Deduplicated(unique, events.height - unique.height)


def _by_day(events: pl.DataFrame) -> Iterator[tuple[date, pl.DataFrame]]:
    """Slices of ``events`` per UTC date: one sort and zero-copy slices, not a filter per day."""
    day = pl.col("event_time").dt.date()
    ordered = events.sort(day, maintain_order=True)
    runs = ordered.select(day.rle()).unnest(day.meta.output_name())
    offset = 0
    for length, value in runs.iter_rows():
        yield value, ordered.slice(offset, length)
        offset += length


class LakeWriteError(IngestError):
    """The lake could not be written (disk full, read-only, ...); nothing was added."""


def write_partitions(events: pl.DataFrame, lake_dir: Path, ingest_id: str) -> list[Path]:
    """Write ``events`` as one file per event date; returns the committed files.

    All or nothing: when a write or a move fails (disk full, read-only directory), the
    files already moved into place are taken back out and ``LakeWriteError`` says why.
    """
    if events.is_empty():
        return []
    staging = lake_dir / STAGING_DIR / ingest_id
    staged: list[tuple[Path, Path]] = []
    committed: list[Path] = []
    try:
        for day, part in _by_day(events):
            name = f"part-{ingest_id}.parquet"
            tmp = staging / f"{PARTITION_COLUMN}={day.isoformat()}" / name
            tmp.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(tmp, compression="zstd", statistics=True)
            staged.append((tmp, partition_path(lake_dir, day) / name))
        for tmp, final in staged:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(final)
            committed.append(final)
    except (OSError, pl.exceptions.ComputeError) as problem:  # Polars wraps I/O errors
        remove_files(committed)
        raise LakeWriteError(
            f"cannot write the event lake at {lake_dir}: {problem}; "
            "nothing from this file was added"
        ) from problem
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return committed


def remove_files(files: list[Path]) -> None:
    """Best effort: take back files an unfinished ingest had moved into the lake."""
    for path in files:
        path.unlink(missing_ok=True)


def record_ingest(lake_dir: Path, summary: dict[str, object]) -> None:
    """Append one line per completed ingest to the lake's manifest (its audit trail)."""
    lake_dir.mkdir(parents=True, exist_ok=True)
    with (lake_dir / MANIFEST_FILE).open("a", encoding="utf8") as manifest:
        manifest.write(json.dumps(summary, default=str) + "\n")
