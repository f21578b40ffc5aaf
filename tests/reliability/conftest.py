"""Fixtures of the reliability tests: the shared simulated world (lake + registered tiny
model), one scored store per module, and a live app on it."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.batch.job import score_visitors
from tests.integration.serving.world import KEY, World, event, settings, world

__all__ = ["KEY", "event"]  # the reliability tests import them from here


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    return world(tmp_path_factory)


@pytest.fixture(scope="module")
def scored(shared: World, request: pytest.FixtureRequest) -> tuple[World, str, list[str]]:
    """A batch run published under a name of the test module's own; (world, name, visitors)."""
    name = f"reliability-{request.module.__name__.rsplit('.', 1)[-1]}"
    summary = score_visitors(settings(), shared.paths(name))
    visitors = pl.read_parquet(summary.files["scores"]).get_column("visitor_id").to_list()
    return shared, name, visitors


@pytest.fixture
def client(scored: tuple[World, str, list[str]]) -> Iterator[TestClient]:
    shared, name, _ = scored
    with TestClient(create_app(settings(), shared.paths(name))) as live:
        yield live
