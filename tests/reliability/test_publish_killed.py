"""A scoring run killed with SIGKILL at every step of its publish (a real subprocess that
kills itself when ``score_visitors`` reports the step): at the next start the store, the
run's files and ``latest.json`` name one and the same complete run (the previous run when
killed before the store switched, the new one after), and no leftover of the dead run stays.
Both starts repair it: the score job's (which then re-runs) and the API's."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.batch.job import default_as_of, score_visitors
from serving.batch.publish import STEPS, recover
from serving.settings import ServingPaths
from serving.store.sqlite import SqliteScoreStore
from tests.integration.serving.world import World, settings

ROOT = Path(__file__).resolve().parents[2]
#: The batch job, killed by itself (SIGKILL: no ``finally``, no flush) once ``kill_at`` is done.
DRIVER = """
import os, signal, sys
from datetime import datetime
from pathlib import Path
from serving.batch.job import score_visitors
from serving.settings import ServingPaths
from tests.integration.serving.world import settings

lake, outputs, serving_dir, tracking, as_of, kill_at = sys.argv[1:]

def step(name):
    if name == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

paths = ServingPaths(Path(lake), Path(outputs), Path(serving_dir), tracking)
score_visitors(settings(), paths, as_of=datetime.fromisoformat(as_of), on_step=step)
sys.exit(3)  # the step was never reached
"""
#: Steps after the store switched to the new run: the commit point is passed.
COMMITTED = STEPS[STEPS.index("store-switched") :]


def _kill_at(step: str, paths: ServingPaths, as_of: datetime) -> None:
    folders = (paths.lake_dir, paths.outputs_dir, paths.serving_dir, paths.tracking_uri)
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, folders), as_of.isoformat(), step],
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL, f"not killed at {step}"


def _one_complete_run(paths: ServingPaths) -> str:
    """The run the store, ``latest.json`` and the files all name; fails if they differ, if
    the run's files are incomplete or if anything a dead run left is still there."""
    store = SqliteScoreStore.open(paths.sqlite_path)
    try:
        run = store.current_run()
    finally:
        store.close()
    assert run is not None
    scoring = paths.scoring_dir
    latest = orjson.loads((scoring / "latest.json").read_bytes())
    assert latest["run_id"] == run.run_id, "latest.json and the store name different runs"
    assert Path(latest["run_dir"]) == scoring / run.run_id
    summary = orjson.loads((scoring / run.run_id / "summary.json").read_bytes())
    assert summary["run_id"] == run.run_id
    for file in latest["files"].values():
        assert Path(file).parent == scoring / run.run_id and Path(file).is_file()
    scores = pl.read_parquet(latest["files"]["scores"]).get_column("visitor_id")
    with sqlite3.connect(paths.sqlite_path) as db:
        stored = {r[0] for r in db.execute("SELECT visitor_id FROM scores")}
    assert stored == set(scores) and scores.len() == run.visitors == summary["visitors"]
    left = sorted(p.name for p in scoring.iterdir() if p.name.startswith("."))
    assert left == [], f"leftovers of the killed run: {left}"
    for folder in scoring.iterdir():
        assert folder.name == "latest.json" or (folder / "summary.json").is_file()
    return run.run_id


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step", "again"),
    [(s, False) for s in STEPS if s != "set-aside"] + [(s, True) for s in STEPS],
    ids=lambda v: {True: "rescoring-a-run", False: "new-run"}.get(v, v),
)
def test_killed_at_every_step_the_next_start_names_one_complete_run(
    shared: World, step: str, again: bool
) -> None:
    """``again``: the killed job scores an as_of scored before, whose folder is replaced."""
    paths = shared.paths(f"publish-killed-{step}-{again}")
    start = default_as_of(shared.lake_dir)
    older = score_visitors(settings(), paths, as_of=start)
    previous = score_visitors(settings(), paths, as_of=start + timedelta(days=1))
    as_of = start if again else start + timedelta(days=2)

    _kill_at(step, paths, as_of)

    left = [p for p in paths.scoring_dir.iterdir() if p.name.startswith(".")]
    store = SqliteScoreStore.open(paths.sqlite_path)
    try:
        killed = store.current_run()
        assert killed is not None
        recovery = recover(paths.scoring_dir, store)  # what the job's and the API's start do
    finally:
        store.close()
    published = _one_complete_run(paths)
    if step in COMMITTED:
        assert published == killed.run_id != previous.run_id
        assert (published == older.run_id) == again
    else:
        assert published == killed.run_id == previous.run_id
    assert recovery.removed == len(left) - (recovery.placed is not None)
    if step == "staged":
        assert left, "the killed run left no staging: killed before it staged?"

    rerun = score_visitors(settings(), paths, as_of=as_of)  # the job's next start
    assert rerun.skipped == (step in COMMITTED)
    assert _one_complete_run(paths) == rerun.run_id


@pytest.mark.slow
def test_the_api_start_finishes_a_publish_killed_between_the_store_and_the_files(
    shared: World,
) -> None:
    paths = shared.paths("publish-killed-api")
    first = score_visitors(settings(), paths)
    later = default_as_of(shared.lake_dir) + timedelta(days=1)
    _kill_at("store-switched", paths, later)
    pointer = orjson.loads((paths.scoring_dir / "latest.json").read_bytes())
    assert pointer["run_id"] == first.run_id  # the old files, the new store: today's defect
    assert list(paths.scoring_dir.glob(".*.partial"))

    with TestClient(create_app(settings(), paths)) as client:
        published = _one_complete_run(paths)
        assert published != first.run_id
        assert client.get("/v1/model").json()["last_run"]["run_id"] == published
        visitor = pl.read_parquet(paths.scoring_dir / published / "scores.parquet")[0, "visitor_id"]
        assert client.get(f"/v1/visitors/{visitor}").status_code == 200
