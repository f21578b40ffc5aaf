"""SQLite (WAL) score store: the embedded default, one file under the data directory.

Each published run is a *generation*: tables ``scores_<g>`` (visitor_id, record, history, the
inputs of a pending explanation) and
``events_<g>`` (posted events). The view ``scores`` points at the live generation; publishing
writes the new tables in several short transactions (readers and real-time writers are not
blocked), then, in one transaction, copies the posted events and records the new run keeps
(``serving.store.base``) and recreates the view and the ``current`` pointer: SQLite DDL is
transactional, so the switch is atomic. Old and orphaned generations are dropped after.
For the API, a background thread copies the WAL into the database (``serving.store.wal``).

One connection per thread (FastAPI runs plain ``def`` routes in a thread pool). Real-time
writes of one process take turns on a lock before they ask SQLite for its write lock: SQLite's
busy handler sleeps milliseconds between retries, which under concurrent writers costs far
more than waiting on a Python lock (other processes still meet the busy timeout).
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from serving.store.base import (
    PUBLISH_COLUMNS,
    Append,
    RecordWrite,
    RunInfo,
    StoredRecord,
    StoreUnavailable,
    VisitorState,
)
from serving.store.history import CarryWindow
from serving.store.wal import WalCheckpointer

log = logging.getLogger(__name__)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
"""


def _tables(generation: int) -> tuple[str, str]:
    return f"scores_{generation}", f"events_{generation}"


def _create_generation(db: sqlite3.Connection, generation: int) -> None:
    scores, events = _tables(generation)
    # A rowid table, its key in an index: in a WITHOUT ROWID table, rows of kilobytes (the
    # batch history) left a few rows per page and a deep tree, and a key lookup took 16 µs
    # against 2 µs (14k visitors; SQLite advises WITHOUT ROWID for rows under a twentieth
    # of a page). Generations written before keep their layout until the next run.
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {scores} "
        "(visitor_id TEXT PRIMARY KEY, record BLOB NOT NULL, history BLOB, unexplained BLOB)"
    )
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {events} "
        "(seq INTEGER PRIMARY KEY AUTOINCREMENT, visitor_id TEXT NOT NULL, event BLOB NOT NULL)"
    )
    db.execute(f"CREATE INDEX IF NOT EXISTS {events}_visitor ON {events} (visitor_id, seq)")


def _add_unexplained_column(db: sqlite3.Connection, generation: int) -> None:
    """Stores written before pending explanations existed lack the column: add it."""
    scores, _ = _tables(generation)
    columns = {row[1] for row in db.execute(f"PRAGMA table_info({scores})")}
    if columns and "unexplained" not in columns:
        db.execute(f"ALTER TABLE {scores} ADD COLUMN unexplained BLOB")
        SqliteScoreStore._switch(db, generation)


class SqliteScoreStore:
    def __init__(
        self, path: Path, checkpoint_every: float | None = None, wal_restart_bytes: int = 0
    ) -> None:
        self.path = path
        self._wal_restart_bytes = wal_restart_bytes
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write = threading.Lock()
        self._checkpoint_every = checkpoint_every
        self._checkpointer: WalCheckpointer | None = None

    @classmethod
    def open(
        cls, path: Path, checkpoint_every: float | None = None, wal_restart_bytes: int = 0
    ) -> SqliteScoreStore:
        """``checkpoint_every`` (seconds): copy the WAL into the database in a thread of its
        own that often, instead of in whichever commit crosses SQLite's threshold. That
        commit's request would wait for the copy and its fsync (7-25 ms measured, the
        events p99); None leaves it to SQLite (the batch job). ``wal_restart_bytes``: with
        it, once the WAL has grown past that size, start it over (``serving.store.wal``)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            store = cls(path, checkpoint_every, wal_restart_bytes)
            db = store._db()
            db.executescript(_SCHEMA)
            with db:
                current = store._current(db)
                if current is None:
                    _create_generation(db, 0)
                    store._switch(db, 0)
                else:
                    _add_unexplained_column(db, current)
        except (OSError, sqlite3.Error) as problem:
            raise StoreUnavailable(f"SQLite score store {path}: {problem}") from problem
        if checkpoint_every is not None:
            store._checkpointer = WalCheckpointer(
                path, checkpoint_every, wal_restart_bytes, writers=store._write
            )
            store._checkpointer.start()
        return store

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            if self._checkpoint_every is not None:
                db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it
            if self._wal_restart_bytes:
                # Kept at most this large when it starts over (a burst may have grown it).
                db.execute(f"PRAGMA journal_size_limit={self._wal_restart_bytes}")
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    @staticmethod
    def _current(db: sqlite3.Connection) -> int | None:
        row = db.execute("SELECT value FROM meta WHERE key = 'current'").fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _switch(db: sqlite3.Connection, generation: int) -> None:
        scores, _ = _tables(generation)
        db.execute("DROP VIEW IF EXISTS scores")
        db.execute(f"CREATE VIEW scores AS SELECT * FROM {scores}")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('current', ?)", (str(generation),))

    def publish(self, run: RunInfo, chunks: Iterable[pl.DataFrame]) -> None:
        db = self._db()
        with db:
            generation = int(
                db.execute(
                    "SELECT coalesce(max(CAST(value AS INTEGER)), 0) + 1 FROM meta "
                    "WHERE key IN ('current', 'last')"
                ).fetchone()[0]
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last', ?)", (str(generation),))
            _create_generation(db, generation)
        scores, _ = _tables(generation)
        for chunk in chunks:
            rows = chunk.select(PUBLISH_COLUMNS).iter_rows()
            with db:
                db.execute("BEGIN")
                db.executemany(
                    f"INSERT OR REPLACE INTO {scores} (visitor_id, record, history) "
                    "VALUES (?, ?, ?)",
                    rows,
                )
        with db:
            # The write lock from here to the switch: no posted event lands between the
            # carry and the switch, so none is left behind in the old generation.
            db.execute("BEGIN IMMEDIATE")
            live = self._current(db)
            if live is not None and live != generation:
                self._carry_posted(db, live, generation, run.carry_window())
            self._switch(db, generation)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('run', ?)", (run.to_json(),))
        self._drop_other_generations(db, generation)

    @staticmethod
    def _carry_posted(
        db: sqlite3.Connection, live: int, generation: int, window: CarryWindow
    ) -> None:
        """Copy ``live``'s posted events inside ``window`` and the live records those
        visitors keep (``serving.store.base``) into ``generation``; the caller holds the
        write lock. The copies are numbered after every event of ``live``: a re-score that
        read its state before the switch (another batch history) finds its version gone and
        leaves the new run's record be."""
        live_scores, live_events = _tables(live)
        scores, events = _tables(generation)
        (top,) = db.execute(f"SELECT coalesce(max(seq), 0) FROM {live_events}").fetchone()
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (events, top))
        time = "json_extract(CAST(event AS TEXT), '$.event_time')"
        kept = f"(? IS NULL OR (json_valid(CAST(event AS TEXT)) AND {time} >= ?))"
        db.execute(
            f"INSERT INTO {events} (visitor_id, event) "
            f"SELECT visitor_id, event FROM {live_events} WHERE {kept} ORDER BY seq",
            (window.start, window.start),
        )
        # Known only through the API: the run has no record of them.
        db.execute(
            f"INSERT OR IGNORE INTO {scores} (visitor_id, record, unexplained) "
            f"SELECT visitor_id, record, unexplained FROM {live_scores} "
            f"WHERE visitor_id IN (SELECT visitor_id FROM {events})"
        )
        # An event the run could not see: the live (real-time) record counts it.
        db.execute(
            f"UPDATE {scores} SET (record, unexplained) = "
            f"(SELECT record, unexplained FROM {live_scores} l "
            f"WHERE l.visitor_id = {scores}.visitor_id) "
            f"WHERE visitor_id IN (SELECT visitor_id FROM {events} "
            f"WHERE json_valid(CAST(event AS TEXT)) AND {time} >= ?) "
            f"AND visitor_id IN (SELECT visitor_id FROM {live_scores})",
            (window.as_of,),
        )

    def _drop_other_generations(self, db: sqlite3.Connection, keep: int) -> None:
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND (name LIKE 'scores\\_%' ESCAPE '\\' OR name LIKE 'events\\_%' ESCAPE '\\')"
            )
        ]
        for name in names:
            if name.rsplit("_", 1)[1] != str(keep):
                with db:
                    db.execute(f"DROP TABLE IF EXISTS {name}")

    def current_run(self) -> RunInfo | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = 'run'").fetchone()
        return None if row is None else RunInfo.from_json(row[0])

    def get_record(self, visitor_id: str) -> bytes | None:
        found = self.lookup(visitor_id)
        return None if found is None else found.record

    def lookup(self, visitor_id: str) -> StoredRecord | None:
        row = (
            self._db()
            .execute("SELECT record, unexplained FROM scores WHERE visitor_id = ?", (visitor_id,))
            .fetchone()
        )
        if row is None:
            return None
        return StoredRecord(bytes(row[0]), None if row[1] is None else bytes(row[1]))

    def put_explained(self, visitor_id: str, unexplained: bytes, explained: bytes) -> bool:
        db = self._db()
        with self._write, db:
            db.execute("BEGIN IMMEDIATE")
            scores, _ = _tables(self._current(db) or 0)
            changed = db.execute(
                f"UPDATE {scores} SET record = ?, unexplained = NULL "
                "WHERE visitor_id = ? AND record = ?",
                (explained, visitor_id, unexplained),
            ).rowcount
            return changed == 1

    def get_state(self, visitor_id: str) -> VisitorState:
        db = self._db()
        # One read transaction: the record, the batch history and the posted events come
        # from the same generation.
        with db:
            db.execute("BEGIN")
            return self._state(db, self._current(db) or 0, visitor_id)

    def append_events(self, visitor_id: str, events: Sequence[bytes], keep: int) -> VisitorState:
        return self.append_many([(visitor_id, events)], keep)[0]

    def append_many(self, appends: Sequence[Append], keep: int) -> list[VisitorState]:
        db = self._db()
        with self._write, db:
            db.execute("BEGIN IMMEDIATE")
            generation = self._current(db) or 0
            _, table = _tables(generation)
            states = []
            for visitor_id, events in appends:
                db.executemany(
                    f"INSERT INTO {table} (visitor_id, event) VALUES (?, ?)",
                    [(visitor_id, e) for e in events],
                )
                state = self._state(db, generation, visitor_id)
                if len(state.posted_events) > keep:
                    state = self._trim(db, table, visitor_id, state, keep)
                states.append(state)
            return states

    @staticmethod
    def _trim(
        db: sqlite3.Connection, table: str, visitor_id: str, state: VisitorState, keep: int
    ) -> VisitorState:
        """Drop all but the latest ``keep`` posted events (checked after the read: most
        visitors are under the limit, and a delete on every append was a sixth of its
        time)."""
        (oldest_kept,) = db.execute(
            f"SELECT seq FROM {table} WHERE visitor_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (visitor_id, keep - 1),
        ).fetchone()
        db.execute(
            f"DELETE FROM {table} WHERE visitor_id = ? AND seq < ?", (visitor_id, oldest_kept)
        )
        return dataclasses.replace(state, posted_events=state.posted_events[-keep:])

    @staticmethod
    def _state(db: sqlite3.Connection, generation: int, visitor_id: str) -> VisitorState:
        """The visitor's state in ``generation``; the caller holds a transaction."""
        scores, events = _tables(generation)
        row = db.execute(
            f"SELECT record, history FROM {scores} WHERE visitor_id = ?", (visitor_id,)
        ).fetchone()
        posted = db.execute(
            f"SELECT seq, event FROM {events} WHERE visitor_id = ? ORDER BY seq", (visitor_id,)
        ).fetchall()
        record, history = (None, None) if row is None else row
        return VisitorState(
            record=None if record is None else bytes(record),
            batch_history=None if history is None else bytes(history),
            posted_events=[bytes(e) for _, e in posted],
            # The last posted event's sequence number: it grows with every append.
            version=int(posted[-1][0]) if posted else 0,
        )

    def put_record(self, visitor_id: str, record: bytes, *, if_version: int | None = None) -> bool:
        return self.put_records([RecordWrite(visitor_id, record, if_version)])[0]

    def put_records(self, writes: Sequence[RecordWrite]) -> list[bool]:
        db = self._db()
        with self._write, db:
            db.execute("BEGIN IMMEDIATE")
            scores, events = _tables(self._current(db) or 0)
            stored = []
            for visitor_id, record, if_version, unexplained in writes:
                if if_version is not None:
                    (version,) = db.execute(
                        f"SELECT coalesce(max(seq), 0) FROM {events} WHERE visitor_id = ?",
                        (visitor_id,),
                    ).fetchone()
                    if int(version) != if_version:
                        stored.append(False)
                        continue
                db.execute(
                    f"INSERT INTO {scores} (visitor_id, record, unexplained) VALUES (?, ?, ?) "
                    "ON CONFLICT (visitor_id) DO UPDATE "
                    "SET record = excluded.record, unexplained = excluded.unexplained",
                    (visitor_id, record, unexplained),
                )
                stored.append(True)
            return stored

    def ping(self) -> bool:
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()
