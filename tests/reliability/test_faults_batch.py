"""Batch scoring killed with SIGKILL halfway through publishing (a real subprocess): the
previous run's files, ``latest.json`` and the score store are exactly as they were; the
re-run completes and leaves exactly one result per visitor, in the files and in the store."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

from serving.batch.job import default_as_of, score_visitors
from serving.store.sqlite import SqliteScoreStore
from tests.integration.serving.world import World, settings

ROOT = Path(__file__).resolve().parents[2]
#: Runs the batch job, publishing in chunks of 100 visitors; after two chunks are committed
#: to the store's new generation it signals the test and waits to be killed.
DRIVER = """
import sys, time
from datetime import datetime
from pathlib import Path
import serving.batch.job as batch
from serving.settings import ServingPaths
from tests.integration.serving.world import settings

lake, outputs, serving_dir, tracking, as_of, marker = sys.argv[1:]
real = batch._publish_chunks

def halting(scored, histories, rows):
    for i, chunk in enumerate(real(scored, histories, 100)):
        if i == 2:
            Path(marker).write_text("halfway")
            time.sleep(600)
        yield chunk

batch._publish_chunks = halting
paths = ServingPaths(Path(lake), Path(outputs), Path(serving_dir), tracking)
batch.score_visitors(settings(), paths, as_of=datetime.fromisoformat(as_of))
"""


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _store_rows(path: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT visitor_id, record FROM scores ORDER BY visitor_id").fetchall()


def test_sigkill_halfway_keeps_the_previous_run_and_the_rerun_completes(
    shared: World, tmp_path: Path
) -> None:
    paths = shared.paths("fault-sigkill")
    first = score_visitors(settings(), paths)
    files_before = _digest(Path(first.run_dir))
    latest_before = (paths.scoring_dir / "latest.json").read_bytes()
    rows_before = _store_rows(paths.sqlite_path)
    assert len(rows_before) == first.visitors > 200  # enough for the halt after 2 chunks

    later = default_as_of(shared.lake_dir) + timedelta(days=1)
    marker = tmp_path / "halfway"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DRIVER,
            str(paths.lake_dir),
            str(paths.outputs_dir),
            str(paths.serving_dir),
            str(paths.tracking_uri),
            later.isoformat(),
            str(marker),
        ],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert process.poll() is None, "the batch job ended before the halfway point"
            assert time.monotonic() < deadline, "the batch job never reached halfway"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    # The previous run, untouched: its files, the pointer, the live store records.
    assert _digest(Path(first.run_dir)) == files_before
    assert (paths.scoring_dir / "latest.json").read_bytes() == latest_before
    store = SqliteScoreStore.open(paths.sqlite_path)
    assert store.current_run().run_id == first.run_id  # type: ignore[union-attr]
    store.close()
    assert _store_rows(paths.sqlite_path) == rows_before
    visible = [p.name for p in paths.scoring_dir.iterdir() if not p.name.startswith(".")]
    assert sorted(visible) == sorted([first.run_id, "latest.json"])
    assert list(paths.scoring_dir.glob(".*.partial")), "killed before its outputs were staged?"

    # The re-run completes: one result per visitor in the files and in the store.
    rerun = score_visitors(settings(), paths, as_of=later)
    assert not rerun.skipped and rerun.run_id != first.run_id
    scores = pl.read_parquet(rerun.files["scores"])
    assert scores.height == rerun.visitors
    assert scores.get_column("visitor_id").is_unique().all()
    rows_after = _store_rows(paths.sqlite_path)
    assert len(rows_after) == rerun.visitors
    assert {v for v, _ in rows_after} == set(scores.get_column("visitor_id"))
    assert rerun.run_id in (paths.scoring_dir / "latest.json").read_text()
    assert not list(paths.scoring_dir.glob(".*.partial")), "a dead run's staging was left"
    with sqlite3.connect(paths.sqlite_path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {t for t in tables if t.startswith("scores_")} == {
        f"scores_{store_generation(paths.sqlite_path)}"
    }, "the killed run's half-written generation was not cleaned up"


def store_generation(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'current'").fetchone()[0])
