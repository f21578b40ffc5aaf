"""A public data set's file read into canonical events through the real ingest (validation,
quarantine, the lake), for the real-data benchmarks."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from features.ingest.pipeline import ingest_file
from features.ingest.sources import EventSource
from features.ingest.validate import ValidationLimits
from features.lake import scan_events


def vendor_events(raw: Path, source: EventSource, *, years: tuple[int, int]) -> pl.DataFrame:
    """Every event of ``raw`` the ingest accepts, with event times inside ``years``
    (the data set's own era, so its old dates are not refused as too far in the past)."""
    limits = ValidationLimits(
        min_event_time=datetime(years[0], 1, 1, tzinfo=UTC),
        max_event_time=datetime(years[1], 1, 1, tzinfo=UTC),
    )
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        ingest_file(
            raw,
            mapping=source.mapping,
            reader=source.reader,
            lake_dir=workdir / "lake",
            quarantine_dir=workdir / "quarantine",
            limits=limits,
            batch_rows=200_000,
            ingest_id=raw.name,
        )
        return scan_events(workdir / "lake").collect()
