"""Ingest when the disk refuses writes: a clear error, and nothing half-written left that
looks complete (no partition file, no manifest line, no quarantine file, no staging).

How the fault is made, honestly: a real kernel write failure comes from a per-process file
size limit (``RLIMIT_FSIZE``: writes past it fail with EFBIG, as a full disk fails with
ENOSPC) on the real CLI in a subprocess. A read-only directory is a real ``chmod`` when the
tests run as a normal user; as root (CI) permissions do not bind, so the read-only and
disk-full failures of the *move into place* and of the *manifest append* are injected at
the writer with ``monkeypatch`` (an ``OSError`` with EROFS / ENOSPC).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from features.ingest import lake_writer, transaction
from features.ingest.batch import IngestError
from features.ingest.lake_writer import EVENTS_DIR, MANIFEST_FILE, STAGING_DIR
from features.ingest.mapping import builtin_mapping
from features.ingest.pipeline import ingest_file
from features.ingest.validate import ValidationLimits

FILE_LIMIT = 4_096  # bytes: smaller than a day's partition of the file below


def _events_file(path: Path, days: int = 3, per_day: int = 3_000, seed: int = 0) -> Path:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    rows = days * per_day
    step = timedelta(days=days) / rows
    events = pl.DataFrame(
        {
            "visitor_id": [f"v{(i * 7919 + seed) % 997}" for i in range(rows)],
            "event_time": [(start + i * step).isoformat() for i in range(rows)],
            "event_name": ["view_item"] * rows,
            "item_id": [f"i{(i * 31 + seed) % 501}" for i in range(rows)],
            "item_category": ["c1"] * rows,
            "price": [round(1 + (i % 97) * 0.37, 2) for i in range(rows)],
            "quantity": [None] * rows,
            "revenue": [None] * rows,
            "transaction_id": [None] * rows,
            "session_id": [f"s{i // 20}" for i in range(rows)],
            "user_id": [None] * rows,
        }
    )
    events.write_csv(path)
    return path


def _left_behind(data: Path) -> dict[str, list[str]]:
    lake = data / "lake"
    return {
        "partitions": sorted(str(p) for p in (lake / EVENTS_DIR).rglob("*.parquet")),
        "staging": sorted(str(p) for p in (lake / STAGING_DIR).rglob("*")),
        "manifest": (lake / MANIFEST_FILE).read_text().splitlines()
        if (lake / MANIFEST_FILE).exists()
        else [],
        "quarantine": sorted(str(p) for p in (data / "quarantine").rglob("*")),
    }


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def test_a_real_write_failure_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    source = _events_file(tmp_path / "events.csv")
    cli = str(Path(sys.executable).with_name("propensity"))
    done = subprocess.run(
        [cli, "ingest", str(source), "--format", "canonical", "--json"],
        env={**os.environ, "PROPENSITY_DATA_DIR": str(data), "PROPENSITY_LOG_LEVEL": "WARNING"},
        preexec_fn=_limit_file_size,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    # Under --json, the error object and nothing else: no summary of an ingest that did not
    # happen.
    (line,) = done.stdout.splitlines()
    error = json.loads(line)["error"]
    assert "cannot write the event lake" in error
    assert "File too large" in error
    assert "nothing from this file was added" in error
    left = _left_behind(data)
    assert left == {"partitions": [], "staging": [], "manifest": [], "quarantine": []}


@pytest.fixture
def lake_with_one_ingest(tmp_path: Path, limits: ValidationLimits) -> Path:
    """A data directory whose lake already holds one good ingest."""
    data = tmp_path / "data"
    _ingest(_events_file(tmp_path / "first.csv", days=2, per_day=50), data, limits, "first")
    return data


def _ingest(path: Path, data: Path, limits: ValidationLimits, ingest_id: str) -> None:
    ingest_file(
        path,
        mapping=builtin_mapping("canonical"),
        lake_dir=data / "lake",
        quarantine_dir=data / "quarantine",
        limits=limits,
        batch_rows=1_000,
        ingest_id=ingest_id,
    )


def _second_file(tmp_path: Path) -> Path:
    """Five days, one of them unreadable (a bad timestamp), so a quarantine file is made."""
    path = _events_file(tmp_path / "second.csv", days=5, per_day=40, seed=3)
    with path.open("a") as handle:
        handle.write("v9,not-a-time,view_item,i1,c1,1.0,,,,s9,\n")
    return path


@pytest.mark.parametrize("where", ["move_into_place", "manifest"])
def test_injected_read_only_or_full_disk_takes_back_the_partial_ingest(
    lake_with_one_ingest: Path,
    tmp_path: Path,
    limits: ValidationLimits,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    data = lake_with_one_ingest
    before = _left_behind(data)
    lake_before = pl.read_parquet(data / "lake" / EVENTS_DIR / "**" / "*.parquet")
    if where == "move_into_place":
        real_replace = Path.replace
        moves: list[Path] = []

        def replace(self: Path, target: Path) -> Path:  # the 3rd of 5 moves fails
            moves.append(self)
            if len(moves) == 3:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))
            return real_replace(self, target)

        monkeypatch.setattr(Path, "replace", replace)
    else:

        def record_ingest(lake_dir: Path, summary: dict[str, object]) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(lake_dir))

        monkeypatch.setattr(transaction, "record_ingest", record_ingest)
    with pytest.raises(IngestError, match="nothing from this file was added"):
        _ingest(_second_file(tmp_path), data, limits, "second")
    monkeypatch.undo()
    assert _left_behind(data) == before
    lake_after = pl.read_parquet(data / "lake" / EVENTS_DIR / "**" / "*.parquet")
    assert lake_after.sort(lake_after.columns).equals(lake_before.sort(lake_before.columns))
    # And once the disk is fine again, the same file ingests completely.
    _ingest(_second_file(tmp_path), data, limits, "second")
    assert len(_left_behind(data)["manifest"]) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_lake_directory(
    lake_with_one_ingest: Path, tmp_path: Path, limits: ValidationLimits
) -> None:
    data = lake_with_one_ingest
    before = _left_behind(data)
    events = data / "lake" / EVENTS_DIR
    modes = {p: p.stat().st_mode for p in [data / "lake", events, *events.iterdir()]}
    try:
        for path in modes:
            path.chmod(0o555)
        with pytest.raises(IngestError, match="cannot write the event lake"):
            _ingest(_second_file(tmp_path), data, limits, "second")
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert _left_behind(data) == before


def test_lake_writer_names_the_lake_in_its_error(tmp_path: Path) -> None:
    """The lake path taken by a plain file: refused with the path in the message."""
    (tmp_path / "lake").write_text("not a directory")
    events = pl.read_csv(_events_file(tmp_path / "e.csv", days=1, per_day=5))
    from features.events.schema import conform_events

    with pytest.raises(lake_writer.LakeWriteError, match=str(tmp_path / "lake")):
        lake_writer.write_partitions(
            conform_events(
                events.with_columns(
                    pl.col("event_time").str.to_datetime(time_zone="UTC"),
                    pl.lit("canonical").alias("source"),
                )
            ),
            tmp_path / "lake",
            "x",
        )
