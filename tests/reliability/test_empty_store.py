"""A store that lost its data (Redis restarted empty) while the outputs name a published run
is not ready, an alarm answered 503, not a 404 for every visitor; before the first run ever
published nothing was lost."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.settings import ServingPaths
from tests.integration.serving.world import World, settings


def _empty(store: Path) -> None:
    with sqlite3.connect(store) as db:
        (generation,) = db.execute("SELECT value FROM meta WHERE key = 'current'").fetchone()
        db.execute("DELETE FROM meta WHERE key = 'run'")
        db.execute(f"DELETE FROM scores_{int(generation)}")


def _copy(paths: ServingPaths, tmp_path: Path) -> ServingPaths:
    """The module's published run, copied so emptying its store harms no other test."""
    shutil.copytree(paths.outputs_dir, tmp_path / "outputs")
    shutil.copytree(paths.serving_dir, tmp_path / "serving")
    return ServingPaths(
        lake_dir=paths.lake_dir,
        outputs_dir=tmp_path / "outputs",
        serving_dir=tmp_path / "serving",
        tracking_uri=paths.tracking_uri,
    )


def test_a_store_that_lost_its_run_is_not_ready_and_lookups_say_why(
    scored: tuple[World, str, list[str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared, name, visitors = scored
    paths = _copy(shared.paths(name), tmp_path)
    with TestClient(create_app(settings(), paths)) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get(f"/v1/visitors/{visitors[0]}").status_code == 200
        _empty(paths.sqlite_path)

        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "lost its data" in ready.json()["reason"]
        lookup = client.get(f"/v1/visitors/{visitors[0]}")
        assert lookup.status_code == 503
        assert "lost its data" in lookup.json()["detail"]
    assert any("holds no run" in record.getMessage() for record in caplog.records)


def test_before_the_first_published_run_lookups_are_unknown_visitors(
    scored: tuple[World, str, list[str]], tmp_path: Path
) -> None:
    """Nothing was lost: the API is ready for posted events and a lookup is a plain 404."""
    shared, name, visitors = scored
    paths = _copy(shared.paths(name), tmp_path)
    (paths.scoring_dir / "latest.json").unlink()
    _empty(paths.sqlite_path)
    with TestClient(create_app(settings(), paths)) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get(f"/v1/visitors/{visitors[0]}").status_code == 404
