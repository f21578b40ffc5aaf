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


@pytest.fixture(autouse=True)
def _mlflow_globals_restored() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` is process-wide and exports MLFLOW_TRACKING_URI: undo it
    after each test so that one test's store never receives another test's runs."""
    import mlflow

    tracking, registry = (os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"))
    yield
    mlflow.set_tracking_uri(tracking)  # type: ignore[arg-type]  # None: back to the default
    mlflow.set_registry_uri(registry)  # type: ignore[arg-type]
    for key, value in (("MLFLOW_TRACKING_URI", tracking), ("MLFLOW_REGISTRY_URI", registry)):
        if value is None:
            os.environ.pop(key, None)
