"""kill -9 at random points of a multi-file ingest: the lake never shows part of a file,
and a re-run leaves it event for event as a clean ingest does.

The real CLI runs in a subprocess with a small memory budget (so each file goes through
several batches, spills and hash slices) and is killed with SIGKILL: no handler runs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from features.ingest.lake_writer import EVENTS_DIR, MANIFEST_FILE, STAGING_DIR
from features.ingest.transaction import COMMIT_RECORD, read_manifest
from tests.integration.features.test_incremental_ingest import lake_events
from tests.reliability.test_faults_ingest import _events_file

CLI = str(Path(sys.executable).with_name("propensity"))


def _start(inbox: Path, data: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PROPENSITY_DATA_DIR": str(data),
        "PROPENSITY_LOG_LEVEL": "WARNING",
        "PROPENSITY_INGEST__MAX_MEMORY_MB": "64",  # 10k-row batches, spills, day slices
    }
    return subprocess.Popen(
        [CLI, "ingest", str(inbox), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _run(inbox: Path, data: Path) -> dict[str, object]:
    done = _start(inbox, data)
    out, errors = done.communicate(timeout=600)
    assert done.returncode == 0, errors.decode()
    return json.loads(out)  # type: ignore[no-any-return]


def _only_committed_files_visible(data: Path) -> None:
    """Every partition file belongs to an ingest in the manifest, or to one whose commit
    record is written (the next ingest finishes its moves)."""
    lake = data / "lake"
    committed = {e["ingest_id"] for e in read_manifest(lake)}
    committing = {p.parent.name for p in (lake / STAGING_DIR).glob(f"*/{COMMIT_RECORD}")}
    for part in (lake / EVENTS_DIR).rglob("*.parquet"):
        owners = [i for i in committed | committing if part.stem.startswith(f"part-{i}")]
        assert owners, f"{part} belongs to no committed ingest"


def test_kill_9_anywhere_then_rerun_gives_the_clean_lake(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    whole = _events_file(tmp_path / "whole.csv", days=4, per_day=5_000)
    header, *lines = whole.read_bytes().splitlines(keepends=True)
    for day in range(4):  # daily exports, each reaching into the next day (overlaps)
        piece = lines[day * 5_000 : (day + 1) * 5_000 + 500]
        (inbox / f"events_{day}.csv").write_bytes(header + b"".join(piece))
    started = time.perf_counter()
    clean = _run(inbox, tmp_path / "clean")
    duration = time.perf_counter() - started
    rng = random.Random(19)
    crashed = tmp_path / "crashed"
    for _ in range(5):
        process = _start(inbox, crashed)
        time.sleep(rng.uniform(0.3, duration))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        _only_committed_files_visible(crashed)
    rerun = _run(inbox, crashed)
    assert not list((crashed / "lake" / STAGING_DIR).glob("*/*"))
    assert lake_events(crashed).equals(lake_events(tmp_path / "clean"))
    manifest = read_manifest(crashed / "lake")
    assert sorted(e["file"] for e in manifest) == sorted(
        f["file"]
        for f in clean["files"]
        if f["status"] == "ingested"  # type: ignore[index,attr-defined]
    )
    assert (crashed / "lake" / MANIFEST_FILE).read_text().endswith("\n")
    statuses = [f["status"] for f in rerun["files"]]  # type: ignore[index]
    assert set(statuses) <= {"ingested", "skipped"}
