"""De-duplicate a file's events against themselves and the lake, one event date at a time.

A duplicate has the same canonical content, so the same ``event_time``, so the same event
date: the key space splits by day with no event's copies in two days. Accepted events are
held by day as they are validated, and spilled to disk beyond a memory budget
(``DayBuffer``); each day is then de-duplicated
against that day's partition of the lake and written as the file's part of the partition.
A day larger than the memory budget is split further by hash, so that memory never holds
more than ``day_rows`` new events, whatever the file's size or the day's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from features.events.schema import EVENT_COLUMNS, PARTITION_COLUMN
from features.ingest.lake_writer import event_hash, partition_path

_HASH = "_event_hash"
#: New events of one date de-duplicated at once (~0.2 GB at 1M; see ``IngestBudget``).
DEFAULT_DAY_ROWS = 1_000_000
#: Accepted events held in memory before they are spilled to disk.
DEFAULT_HELD_BYTES = 512 << 20
_DAY = "_event_date"


@dataclass
class DayBuffer:
    """A file's accepted events by event date: in memory up to ``max_bytes``, then spilled
    to disk under ``directory`` (one file per date per spill), so memory stays bounded."""

    directory: Path
    max_bytes: int
    rows_by_day: dict[date, int] = field(default_factory=dict)
    first_event: datetime | None = None
    last_event: datetime | None = None
    _held: dict[date, list[pl.DataFrame]] = field(default_factory=dict)
    _held_bytes: int = 0
    _spills: int = 0

    def add(self, events: pl.DataFrame) -> None:
        """Add canonical ``events`` (``EVENT_SCHEMA``), keeping their order within a day."""
        if events.is_empty():
            return
        times = events.get_column("event_time")
        low, high = times.min(), times.max()
        assert isinstance(low, datetime) and isinstance(high, datetime)
        self.first_event = low if self.first_event is None else min(self.first_event, low)
        self.last_event = high if self.last_event is None else max(self.last_event, high)
        keyed = events.with_columns(event_hash(events))
        for day, part in _by_day(keyed):
            self._held.setdefault(day, []).append(part)
            self.rows_by_day[day] = self.rows_by_day.get(day, 0) + part.height
        self._held_bytes += int(keyed.estimated_size())
        if self._held_bytes > self.max_bytes:
            self.spill()

    def spill(self) -> None:
        """Write what is held to disk: one file per date, as Arrow IPC (a near copy of the
        memory: several times cheaper than Parquet to write and read back, once)."""
        for day, parts in self._held.items():
            folder = self.directory / day.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            pl.concat(parts).write_ipc(
                folder / f"{self._spills:06d}.arrow", compression="uncompressed"
            )
        self._held, self._held_bytes = {}, 0
        self._spills += 1

    def scan_day(self, day: date) -> pl.LazyFrame:
        """The day's events with their ``_event_hash``; releases the part held in memory."""
        files = sorted((self.directory / day.isoformat()).glob("*.arrow"))
        held = self._held.pop(day, [])
        self._held_bytes -= sum(int(part.estimated_size()) for part in held)
        frames = [pl.scan_ipc(files)] if files else []
        return pl.concat([*frames, *(part.lazy() for part in held)])


def _by_day(events: pl.DataFrame) -> Iterator[tuple[date, pl.DataFrame]]:
    """Per UTC date, the rows of ``events`` in order. Exports usually come in time order:
    then the days are zero-copy slices, and only a shuffled batch pays for a split."""
    day = events.get_column("event_time").dt.date()
    if day.is_sorted():
        offset = 0
        for value, length in day.rle().struct.unnest().select("value", "len").iter_rows():
            yield value, events.slice(offset, length)
            offset += length
        return
    keyed = events.with_columns(day.alias(_DAY))
    for (value,), part in keyed.partition_by(_DAY, as_dict=True, maintain_order=True).items():
        assert isinstance(value, date)
        yield value, part.drop(_DAY)


@dataclass(frozen=True)
class DayResult:
    """What one event date of a file added: its staged part files and the rows in them."""

    files: list[Path]
    accepted: int
    duplicates: int


def lake_hashes(lake_dir: Path, day: date) -> pl.Series:
    """Fingerprints of the events the lake already holds for ``day``, read column-wise by
    the streaming engine (only the 8-byte hashes are held, not the events)."""
    files = sorted(partition_path(lake_dir, day).glob("*.parquet"))
    if not files:
        return pl.Series(_HASH, [], dtype=pl.UInt64)
    scan = pl.scan_parquet(files).select(pl.struct(EVENT_COLUMNS).hash(seed=0).alias(_HASH))
    return scan.collect(engine="streaming").to_series()


def deduplicate_day(
    buffer: DayBuffer, day: date, lake_dir: Path, out_dir: Path, name: str, day_rows: int
) -> DayResult:
    """Write the events of ``day`` that are new (first copy, not in the lake) as parquet
    files under ``out_dir/event_date=<day>/`` named after ``name``."""
    rows = buffer.rows_by_day[day]
    slices = max(1, math.ceil(rows / day_rows))
    existing = lake_hashes(lake_dir, day)
    folder = out_dir / f"{PARTITION_COLUMN}={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    files, accepted = [], 0
    day_events = buffer.scan_day(day)
    for index in range(slices):
        new = day_events
        known = existing
        if slices > 1:  # copies share a hash, so they land in the same slice
            new = new.filter(pl.col(_HASH) % slices == index)
            known = existing.filter(existing % slices == index)
        events = new.collect()
        hashes = events.get_column(_HASH)
        unique = events.filter(hashes.is_first_distinct() & ~hashes.is_in(known.implode()))
        if unique.is_empty():
            continue
        suffix = f"-{index:03d}" if slices > 1 else ""
        path = folder / f"part-{name}{suffix}.parquet"
        unique.select(EVENT_COLUMNS).write_parquet(path, compression="zstd", statistics=True)
        files.append(path)
        accepted += unique.height
    return DayResult(files, accepted, rows - accepted)
