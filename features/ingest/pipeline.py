"""Ingest one file: read, validate, quarantine, de-duplicate, append to the lake.

Every row read ends up in exactly one place: accepted into the lake, quarantined (with a
reason, in a CSV file the user can open), or counted as a duplicate of an accepted event.
``IngestReport.check_balance`` enforces ``rows_read = accepted + quarantined + duplicates``.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from features.events.schema import conform_events, empty_events
from features.ingest.batch import IngestError, RawBatch
from features.ingest.lake_writer import (
    LakeWriteError,
    drop_duplicates,
    record_ingest,
    remove_files,
    write_partitions,
)
from features.ingest.mapping import SourceMapping
from features.ingest.prefetch import prefetched
from features.ingest.tabular import iter_tabular
from features.ingest.tolerant import iter_csv_tolerant
from features.ingest.validate import ValidationLimits, validate_batch

log = logging.getLogger(__name__)
BatchReader = Callable[[Path, int], Iterator[RawBatch]]
ProgressCallback = Callable[[int], None]


@dataclass
class IngestReport:
    """What happened to every row of one file. Serialises to the ``--json`` summary."""

    file: str
    source: str
    ingest_id: str
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    visitors: int = 0
    first_event: datetime | None = None
    last_event: datetime | None = None
    quarantine_file: str | None = None
    contacts_updated: int = 0  # visitors whose contactability the file changed

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def check_balance(self) -> None:
        """Raise if any row is unaccounted for: the ingest's one promise."""
        total = self.accepted + self.quarantined_total + self.duplicates
        if total != self.rows_read:
            raise AssertionError(
                f"{self.file}: rows read {self.rows_read} != accepted {self.accepted} "
                f"+ quarantined {self.quarantined_total} + duplicates {self.duplicates}"
            )

    def to_dict(self) -> dict[str, object]:
        summary = asdict(self)
        for key in ("first_event", "last_event"):
            value = summary[key]
            summary[key] = value.isoformat() if value is not None else None
        return summary


class QuarantineWriter:
    """Streams quarantined rows to ``<dir>/<ingest_id>.csv``, created on the first bad row."""

    def __init__(self, directory: Path, ingest_id: str, file: Path) -> None:
        self.path = directory / f"{ingest_id}.csv"
        self.ingest_id = ingest_id
        self._file = str(file)
        self.reasons: Counter[str] = Counter()

    def write(self, quarantined: pl.DataFrame) -> None:
        if quarantined.is_empty():
            return
        self.reasons.update(quarantined.get_column("reason").to_list())
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf8", newline="") as handle:
            quarantined.select(pl.lit(self._file).alias("file"), pl.all()).write_csv(
                handle, include_header=new
            )


def ingest_batches(
    batches: Iterator[RawBatch],
    *,
    file: Path,
    mapping: SourceMapping,
    lake_dir: Path,
    quarantine_dir: Path,
    limits: ValidationLimits,
    ingest_id: str,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Validate ``batches`` read from ``file`` and append the accepted events to the lake."""
    quarantine = QuarantineWriter(quarantine_dir, ingest_id, file)
    try:
        return _ingest(batches, file, mapping, lake_dir, quarantine, limits, on_progress)
    except BaseException:
        # An ingest that did not finish leaves nothing that looks finished: no quarantine
        # file either (the lake and the manifest were never written, or were taken back).
        quarantine.path.unlink(missing_ok=True)
        raise


def _ingest(
    batches: Iterator[RawBatch],
    file: Path,
    mapping: SourceMapping,
    lake_dir: Path,
    quarantine: QuarantineWriter,
    limits: ValidationLimits,
    on_progress: ProgressCallback | None,
) -> IngestReport:
    report = IngestReport(file=str(file), source=mapping.name, ingest_id=quarantine.ingest_id)
    accepted: list[pl.DataFrame] = []
    for batch in prefetched(batches):
        validated = validate_batch(batch.records, mapping, limits)
        quarantine.write(batch.unreadable)
        quarantine.write(validated.quarantined)
        accepted.append(validated.accepted)
        report.rows_read += batch.rows_read
        if on_progress is not None:
            on_progress(batch.rows_read)
    events = conform_events(pl.concat(accepted)) if accepted else empty_events()
    unique = drop_duplicates(events, lake_dir)
    committed = write_partitions(unique.events, lake_dir, quarantine.ingest_id)
    report.accepted = unique.events.height
    report.duplicates = unique.duplicates
    report.quarantined = dict(quarantine.reasons.most_common())
    report.quarantine_file = str(quarantine.path) if quarantine.reasons else None
    if not unique.events.is_empty():
        report.visitors = unique.events.get_column("visitor_id").n_unique()
        report.first_event = unique.events.get_column("event_time").min()  # type: ignore[assignment]
        report.last_event = unique.events.get_column("event_time").max()  # type: ignore[assignment]
    report.check_balance()
    try:
        record_ingest(lake_dir, report.to_dict())
    except OSError as problem:  # no manifest line: take the events back out too
        remove_files(committed)
        raise LakeWriteError(
            f"cannot record the ingest in {lake_dir}: {problem}; nothing from this file was added"
        ) from problem
    return report


def new_ingest_id(started: datetime) -> str:
    """Sortable and unique: the start time plus a random suffix."""
    return f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def ingest_file(
    path: Path,
    *,
    mapping: SourceMapping,
    lake_dir: Path,
    quarantine_dir: Path,
    limits: ValidationLimits,
    batch_rows: int,
    ingest_id: str,
    reader: BatchReader | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Ingest one file with ``reader`` (default: the mapping's CSV/Parquet reader).

    A delimited file the fast reader cannot get through (bytes that are not text, a line
    that breaks the parser, a truncated or corrupt compressed stream) is read again line by
    line (``features.ingest.tolerant``): what can be read is ingested, the rest quarantined.
    """
    read = reader or (lambda p, rows: iter_tabular(p, mapping, rows))
    ingest = functools.partial(
        ingest_batches,
        file=path,
        mapping=mapping,
        lake_dir=lake_dir,
        quarantine_dir=quarantine_dir,
        limits=limits,
        ingest_id=ingest_id,
        on_progress=on_progress,
    )
    try:
        return ingest(read(path, batch_rows))
    except IngestError as problem:
        if reader is not None or mapping.format != "csv" or isinstance(problem, LakeWriteError):
            raise
        # Not the message: a parser's message can quote a line, and lines carry personal data.
        log.warning("%s: the fast reader gave up; reading it line by line", path)
        return ingest(iter_csv_tolerant(path, mapping, batch_rows))
