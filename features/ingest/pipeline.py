"""Ingest one file: read, validate, quarantine, de-duplicate, commit to the lake.

Streaming: batches are validated as they are read and their accepted events spilled by
event date; each date is then de-duplicated against the lake (``features.ingest.dedup``)
and the file's new events committed at once (``features.ingest.transaction``). Memory is
a batch and a day, never the file.

Every row read ends up in exactly one place: accepted into the lake, quarantined (with a
reason, in a CSV file the user can open), or counted as a duplicate of an accepted event.
``IngestReport.check_balance`` enforces ``rows_read = accepted + quarantined + duplicates +
ignored`` (ignored: source events a format knowingly leaves out, counted by name).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from features.events.schema import conform_events
from features.ingest.batch import IngestError, RawBatch
from features.ingest.dedup import DEFAULT_DAY_ROWS, DEFAULT_HELD_BYTES, DayBuffer, deduplicate_day
from features.ingest.lake_writer import EVENTS_DIR, LakeWriteError
from features.ingest.mapping import SourceMapping
from features.ingest.pii import masked_quarantine
from features.ingest.prefetch import prefetched
from features.ingest.tabular import iter_tabular
from features.ingest.tolerant import iter_csv_tolerant
from features.ingest.transaction import LakeTransaction, lake_errors, lake_lock, recover
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
    ignored: dict[str, int] = field(default_factory=dict)  # by source event name
    visitors: int = 0
    first_event: datetime | None = None
    last_event: datetime | None = None
    quarantine_file: str | None = None
    contacts_updated: int = 0  # visitors whose contactability the file changed
    fingerprint: str | None = None  # of the file's content: a folder ingest skips it again

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def ignored_total(self) -> int:
        return sum(self.ignored.values())

    def check_balance(self) -> None:
        """Raise if any row is unaccounted for: the ingest's one promise."""
        total = self.accepted + self.quarantined_total + self.duplicates + self.ignored_total
        if total != self.rows_read:
            raise AssertionError(
                f"{self.file}: rows read {self.rows_read} != accepted {self.accepted} "
                f"+ quarantined {self.quarantined_total} + duplicates {self.duplicates} "
                f"+ ignored {self.ignored_total}"
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
        # Every reader's unreadable lines pass here too: the file never holds an email.
        quarantined = masked_quarantine(quarantined)
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf8", newline="") as handle:
            quarantined.select(pl.lit(self._file).alias("file"), pl.all()).write_csv(
                handle, include_header=new
            )


@dataclass(frozen=True)
class IngestPlan:
    """Where one file's ingest writes, and how much it may hold in memory at once.

    ``batch_rows`` records are validated at a time; ``day_rows`` new events of one date
    are de-duplicated at a time (a larger day is split by hash). Both bound memory
    whatever the file's size (see ``IngestBudget``).
    """

    file: Path
    mapping: SourceMapping
    lake_dir: Path
    quarantine_dir: Path
    limits: ValidationLimits
    ingest_id: str
    fingerprint: Future[str]  # of the file's content, computed beside the ingest
    day_rows: int = DEFAULT_DAY_ROWS
    held_bytes: int = DEFAULT_HELD_BYTES


def ingest_batches(
    batches: Iterator[RawBatch], plan: IngestPlan, on_progress: ProgressCallback | None = None
) -> IngestReport:
    """Validate ``batches`` read from ``plan.file`` and commit the new events to the lake.

    Takes the lake's lock, repairs what an ingest killed earlier left (``recover``), and
    stages everything out of readers' sight until the one commit.
    """
    with lake_lock(plan.lake_dir):
        recover(plan.lake_dir)
        transaction = LakeTransaction(plan.lake_dir, plan.ingest_id)
        transaction.begin()
        try:
            return _ingest(batches, plan, transaction, on_progress)
        except BaseException:
            transaction.abort()
            raise


def _ingest(
    batches: Iterator[RawBatch],
    plan: IngestPlan,
    transaction: LakeTransaction,
    on_progress: ProgressCallback | None,
) -> IngestReport:
    report = IngestReport(file=str(plan.file), source=plan.mapping.name, ingest_id=plan.ingest_id)
    quarantine = QuarantineWriter(transaction.staging, plan.ingest_id, plan.file)
    days = DayBuffer(transaction.staging / "spill", plan.held_bytes)
    ignored: Counter[str] = Counter()
    with lake_errors(plan.lake_dir):
        for batch in prefetched(batches):
            validated = validate_batch(batch.records, plan.mapping, plan.limits)
            quarantine.write(batch.unreadable)
            quarantine.write(validated.quarantined)
            days.add(conform_events(validated.accepted))
            ignored.update(batch.ignored)
            report.rows_read += batch.rows_read
            if on_progress is not None:
                on_progress(batch.rows_read)
        staged = transaction.staging / EVENTS_DIR
        parts: list[Path] = []
        for day in sorted(days.rows_by_day):
            result = deduplicate_day(
                days, day, plan.lake_dir, staged, plan.ingest_id, plan.day_rows
            )
            parts.extend(result.files)
            report.accepted += result.accepted
            report.duplicates += result.duplicates
        shutil.rmtree(days.directory, ignore_errors=True)
    report.quarantined = dict(quarantine.reasons.most_common())
    report.ignored = dict(ignored.most_common())
    moves = [(part, plan.lake_dir / part.relative_to(transaction.staging)) for part in parts]
    if quarantine.reasons:
        final = plan.quarantine_dir / quarantine.path.name
        moves.append((quarantine.path, final))
        report.quarantine_file = str(final)
    if parts:
        report.visitors = _visitors(parts)
        report.first_event, report.last_event = days.first_event, days.last_event
    report.fingerprint = plan.fingerprint.result()
    report.check_balance()
    transaction.commit(moves, report.to_dict())
    return report


def _visitors(parts: list[Path]) -> int:
    """Distinct visitors among the new events (memory: the visitor ids, not the events)."""
    scan = pl.scan_parquet(parts).select(pl.col("visitor_id").n_unique())
    return int(scan.collect(engine="streaming").item())


def file_fingerprint(path: Path) -> str:
    """The file's content fingerprint (SHA-256 of its bytes, as stored)."""
    with path.open("rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


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
    day_rows: int = DEFAULT_DAY_ROWS,
    held_bytes: int = DEFAULT_HELD_BYTES,
    fingerprint: str | None = None,
    reader: BatchReader | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Ingest one file with ``reader`` (default: the mapping's CSV/Parquet reader).

    A delimited file the fast reader cannot get through (bytes that are not text, a line
    that breaks the parser, a truncated or corrupt compressed stream) is read again line by
    line (``features.ingest.tolerant``): what can be read is ingested, the rest quarantined.
    """
    read = reader or (lambda p, rows: iter_tabular(p, mapping, rows))
    # Hashing runs beside the ingest (hashlib releases the GIL): it costs no wall time.
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingerprint")
    if fingerprint is None:
        digest = hashing.submit(file_fingerprint, path)
    else:
        digest = Future()
        digest.set_result(fingerprint)
    plan = IngestPlan(
        file=path,
        mapping=mapping,
        lake_dir=lake_dir,
        quarantine_dir=quarantine_dir,
        limits=limits,
        ingest_id=ingest_id,
        day_rows=day_rows,
        held_bytes=held_bytes,
        fingerprint=digest,
    )
    try:
        return ingest_batches(read(path, batch_rows), plan, on_progress)
    except IngestError as problem:
        if reader is not None or mapping.format != "csv" or isinstance(problem, LakeWriteError):
            raise
        # Not the message: a parser's message can quote a line, and lines carry personal data.
        log.warning("%s: the fast reader gave up; reading it line by line", path)
        return ingest_batches(iter_csv_tolerant(path, mapping, batch_rows), plan, on_progress)
    finally:
        hashing.shutdown(wait=False, cancel_futures=True)
