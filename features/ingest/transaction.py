"""One file's ingest as a transaction on the lake: staged out of sight, then committed whole.

Everything an ingest writes (partition files, its quarantine file) is staged under
``<lake>/_staging/<ingest_id>/``, which no reader looks at. Committing writes a commit
record (the list of moves and the manifest line) and only then moves the files into place
and appends the manifest line. So a process killed at any point leaves either no commit
record (the next ingest deletes the staging folder: the lake is as it was) or a complete
one (the next ingest finishes the moves and the manifest line: the lake is as if the
ingest had not been interrupted). ``recover`` is that repair; ingests take the lake's lock
(``lake_lock``), so one ingest never repairs another that is still running.

Durability against power loss (fsync) is not attempted: a killed process loses nothing the
kernel already holds.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from features.ingest.lake_writer import (
    MANIFEST_FILE,
    STAGING_DIR,
    LakeWriteError,
    record_ingest,
    remove_files,
)

LOCK_FILE = "_ingest.lock"
COMMIT_RECORD = "_COMMIT.json"
_PENDING = ".pending"


@contextmanager
def lake_lock(lake_dir: Path) -> Iterator[None]:
    """Hold the lake's ingest lock (an advisory ``flock``, released if the process dies)."""
    lake_dir.mkdir(parents=True, exist_ok=True)
    with (lake_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def lake_errors(lake_dir: Path) -> Iterator[None]:
    """Turn a failed write (disk full, read-only, file too large) into ``LakeWriteError``."""
    try:
        yield
    except (OSError, pl.exceptions.ComputeError) as problem:  # Polars wraps I/O errors
        raise LakeWriteError(
            f"cannot write the event lake at {lake_dir}: {problem}; "
            "nothing from this file was added"
        ) from problem


def read_manifest(lake_dir: Path) -> list[dict[str, Any]]:
    """The manifest's complete lines (one per committed ingest), oldest first."""
    path = lake_dir / MANIFEST_FILE
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash: never committed
            continue
    return entries


def ingested_fingerprints(lake_dir: Path) -> set[str]:
    """Content fingerprints of the files already ingested into the lake."""
    return {str(e["fingerprint"]) for e in read_manifest(lake_dir) if e.get("fingerprint")}


def _append_manifest(lake_dir: Path, summary: dict[str, Any]) -> None:
    path = lake_dir / MANIFEST_FILE
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":  # a line cut short by a crash: end it first
                with path.open("a", encoding="utf8") as manifest:
                    manifest.write("\n")
    record_ingest(lake_dir, summary)


class LakeTransaction:
    """The staging folder of one ingest and its commit. ``staging`` is private to it."""

    def __init__(self, lake_dir: Path, ingest_id: str) -> None:
        self.lake_dir = lake_dir
        self.ingest_id = ingest_id
        self.staging = lake_dir / STAGING_DIR / ingest_id

    def begin(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        with lake_errors(self.lake_dir):
            self.staging.mkdir(parents=True)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self, moves: list[tuple[Path, Path]], summary: dict[str, Any]) -> None:
        """Move ``moves`` (staged file -> final place) into place and record ``summary``.

        All or nothing: a failure here takes back what was moved and raises
        ``LakeWriteError``; a crash is repaired by the next ``recover``.
        """
        record = {
            "ingest_id": self.ingest_id,
            "moves": [[str(src), str(dst)] for src, dst in moves],
            "summary": summary,
        }
        moved: list[Path] = []
        try:
            with lake_errors(self.lake_dir):
                pending = self.staging / (COMMIT_RECORD + _PENDING)
                pending.write_text(json.dumps(record, default=str), encoding="utf8")
                pending.replace(self.staging / COMMIT_RECORD)  # the commit point
                for src, dst in moves:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    src.replace(dst)
                    moved.append(dst)
            try:
                _append_manifest(self.lake_dir, summary)
            except OSError as problem:  # no manifest line: take the events back out too
                raise LakeWriteError(
                    f"cannot record the ingest in {self.lake_dir}: {problem}; "
                    "nothing from this file was added"
                ) from problem
        except BaseException:
            remove_files(moved)
            raise
        finally:
            self.abort()


def _roll_forward(staging: Path, record: dict[str, Any], lake_dir: Path) -> None:
    for src, dst in record["moves"]:
        source, target = Path(src), Path(dst)
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
    committed = {e.get("ingest_id") for e in read_manifest(lake_dir)}
    if record["ingest_id"] not in committed:
        _append_manifest(lake_dir, record["summary"])


def recover(lake_dir: Path) -> list[str]:
    """Finish the ingests that reached their commit point, drop the others' staging.

    Call with the lake's lock held. Returns the ingest ids that were rolled forward.
    """
    root = lake_dir / STAGING_DIR
    finished: list[str] = []
    if not root.is_dir():
        return finished
    for staging in sorted(p for p in root.iterdir() if p.is_dir()):
        record_path = staging / COMMIT_RECORD
        if record_path.is_file():
            record = json.loads(record_path.read_text(encoding="utf8"))
            with lake_errors(lake_dir):
                _roll_forward(staging, record, lake_dir)
            finished.append(str(record["ingest_id"]))
        shutil.rmtree(staging, ignore_errors=True)
    return finished
