"""Fixtures shared by every kind of test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from features.ingest.validate import ValidationLimits

FIXTURES = Path(__file__).parent / "fixtures"
#: A fixed "now" so that tests never depend on the clock.
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def limits() -> ValidationLimits:
    return ValidationLimits(
        min_event_time=datetime(2000, 1, 1, tzinfo=UTC), max_event_time=NOW + timedelta(days=1)
    )


@pytest.fixture
def shared_data() -> Path:
    """The real public data sets; tests that use them skip cleanly where they are absent."""
    configured = os.environ.get("PROPENSITY_SHARED_DATA")
    if not configured:
        pytest.skip("PROPENSITY_SHARED_DATA is not set: real-data test skipped")
    path = Path(configured)
    if not path.is_dir():
        pytest.skip(f"PROPENSITY_SHARED_DATA={path} does not exist: real-data test skipped")
    return path


#: MLflow's process-wide URIs as the test session found them (before any fixture ran).
_MLFLOW_URIS = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}


@pytest.fixture(autouse=True)
def _mlflow_globals_restored() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` is process-wide and exports MLFLOW_TRACKING_URI, so a
    store set up by one test or fixture would receive the runs of a later test that relies
    on the environment: put them back as the session found them after each test."""
    import mlflow

    yield
    mlflow.set_tracking_uri(_MLFLOW_URIS["MLFLOW_TRACKING_URI"])  # type: ignore[arg-type]
    mlflow.set_registry_uri(_MLFLOW_URIS["MLFLOW_REGISTRY_URI"])  # type: ignore[arg-type]
    for key, value in _MLFLOW_URIS.items():  # None means: back to MLflow's default
        if value is None:
            os.environ.pop(key, None)
