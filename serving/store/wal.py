"""The API's WAL checkpointer: a thread that copies the SQLite WAL into the database, so that no
request waits for the copy, and starts the WAL over once it grows past a size.

SQLite's own checkpoint runs in whichever commit crosses its threshold: that request waits for
the copy and its fsync (7-25 ms measured, the events p99). And SQLite starts the WAL over only
when a write begins with all of it copied and no reader in it; under steady writes some commit
always lands during the copy, so the file grew without bound (275 MB in one benchmark run).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)
#: Before a restart, copy the WAL without the writers' lock until a pass finds at most this
#: many new frames (1 MB of 4 KB pages), or for this many passes.
_FEW_FRAMES = 256
_CATCH_UP_PASSES = 4


class WalCheckpointer:
    """Checkpoints ``path``'s WAL every ``every`` seconds; with ``wal_restart_bytes``, starts
    it over past that size, holding this process's ``writers`` lock for the last copy."""

    def __init__(
        self, path: Path, every: float, wal_restart_bytes: int, *, writers: threading.Lock
    ) -> None:
        self.path = path
        self._every = every
        self._wal_restart_bytes = wal_restart_bytes
        self._writers = writers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            while not self._stop.wait(self._every):
                try:
                    self._checkpoint(db)
                except sqlite3.Error as problem:
                    log.warning("SQLite checkpoint of %s failed: %s", self.path, problem)
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        frames = self._copy_wal(db)
        if not self._wal_restart_bytes or frames * self._page_size(db) < self._wal_restart_bytes:
            return
        # Copy what was written during the last copy until little is, then the rest with
        # this process's writers held off on their lock: the next write starts the WAL over.
        # A plain copy never waits for a reader (a RESTART checkpoint would).
        for _ in range(_CATCH_UP_PASSES):
            before, frames = frames, self._copy_wal(db)
            if frames - before <= _FEW_FRAMES:
                break
        with self._writers:
            self._copy_wal(db)

    @staticmethod
    def _copy_wal(db: sqlite3.Connection) -> int:
        """Copy what no reader still needs into the database, never blocking a writer
        (PASSIVE); the WAL's length in frames."""
        return int(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])

    @staticmethod
    def _page_size(db: sqlite3.Connection) -> int:
        return int(db.execute("PRAGMA page_size").fetchone()[0])
