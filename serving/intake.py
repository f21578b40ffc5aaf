"""Posted events checked with ingestion's own rules (``features.ingest.validate``), batched.

``validate_batch`` costs milliseconds per call whatever the number of rows (it builds and
plans a Polars query), so validating each request alone would cap event intake at a few
hundred requests per second. ``EventIntake`` runs one validation for every request waiting
at that moment (a request never waits for a timer; under load one call serves many), then
applies each request's own work (append, re-score, store) in the same thread: one thread
doing the CPU work beats sixteen pool threads fighting over the GIL.
Rules, reason codes and details are exactly ingestion's; events naming another visitor than
the request's are rejected as ``visitor_mismatch``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import polars as pl

from features.ingest.batch import LINE_COLUMN
from features.ingest.mapping import SourceMapping, builtin_mapping
from features.ingest.validate import ValidationLimits, validate_batch
from serving.schemas import EventIn, Rejection

Checked = tuple[pl.DataFrame, list[Rejection]]
T = TypeVar("T")


@dataclass
class _Pending:
    visitor_id: str
    events: Sequence[EventIn]
    apply: Callable[[Checked], Any] = lambda checked: checked
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


def _records(pending: Sequence[_Pending], mapping: SourceMapping) -> pl.DataFrame:
    """One source-records frame for every pending request; ``LINE_COLUMN`` numbers rows."""
    columns = list(mapping.columns.values())
    rows = [(p.visitor_id, e.model_dump()) for p in pending for e in p.events]
    data = {c: [None if r.get(c) is None else str(r.get(c)) for _, r in rows] for c in columns}
    data["visitor_id"] = [r.get("visitor_id") or default for default, r in rows]
    records = pl.DataFrame(data, schema=dict.fromkeys(columns, pl.String))
    return records.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(LINE_COLUMN))


def check_events(
    pending: Sequence[_Pending], mapping: SourceMapping, limits: ValidationLimits
) -> list[Checked]:
    """Validate the events of several requests in one call; per request (accepted, rejected)."""
    records = _records(pending, mapping)
    owner = [(i, j) for i, p in enumerate(pending) for j in range(len(p.events))]
    expected = pl.Series([pending[i].visitor_id for i, _ in owner], dtype=pl.String)
    same = records.get_column("visitor_id") == expected
    checked = validate_batch(records.filter(same), mapping, limits)
    rejected: list[list[Rejection]] = [[] for _ in pending]
    for line, visitor in records.filter(~same).select(LINE_COLUMN, "visitor_id").iter_rows():
        i, j = owner[line]
        rejected[i].append(
            Rejection(index=j, reason="visitor_mismatch", detail=f"visitor_id={visitor}")
        )
    bad_lines = set()
    for line, reason, detail in checked.quarantined.select("line", "reason", "detail").iter_rows():
        i, j = owner[line]
        bad_lines.add(line)
        rejected[i].append(Rejection(index=j, reason=reason, detail=detail))
    # validate_batch keeps accepted rows in input order: map them back by position.
    kept = [
        line
        for line in records.filter(same).get_column(LINE_COLUMN).to_list()
        if line not in bad_lines
    ]
    request = pl.Series([owner[line][0] for line in kept], dtype=pl.Int64)
    accepted = checked.accepted.with_columns(request.alias("_request"))
    parts = accepted.partition_by("_request", as_dict=True, include_key=False)
    empty = checked.accepted.clear()
    return [
        (parts.get((i,), empty), sorted(rejected[i], key=lambda r: r.index))
        for i in range(len(pending))
    ]


class EventIntake:
    """Thread-safe; ``start`` before use, ``stop`` at shutdown."""

    def __init__(self, limits: Callable[[], ValidationLimits]) -> None:
        self._limits = limits
        self._mapping = builtin_mapping("canonical")
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="event-intake", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def check(self, visitor_id: str, events: Sequence[EventIn]) -> Checked:
        """(accepted canonical events, rejections) for one request's events."""
        checked: Checked = self.run(visitor_id, events, lambda result: result)
        return checked

    def run(self, visitor_id: str, events: Sequence[EventIn], apply: Callable[[Checked], T]) -> T:
        """Validate a request's events, then ``apply`` to the outcome in the intake thread;
        returns what ``apply`` returns or raises what it raised."""
        pending = _Pending(visitor_id, events, apply)
        if self._thread is None:
            self._run([pending])
        else:
            self._queue.put(pending)
            pending.done.wait()
        if pending.error is not None:
            raise pending.error
        result: T = pending.result
        return result

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._run(batch)

    def _run(self, batch: list[_Pending]) -> None:
        try:
            results = check_events(batch, self._mapping, self._limits())
        except Exception as problem:  # every waiting request must hear about it
            for pending in batch:
                pending.error = problem
                pending.done.set()
            return
        for pending, result in zip(batch, results, strict=True):
            try:
                pending.result = pending.apply(result)
            except Exception as problem:  # handed to the waiting request, raised there
                pending.error = problem
            pending.done.set()
