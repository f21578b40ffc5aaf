"""Write simulated data to disk in the formats that ``propensity ingest`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from features.simulation.config import SimulationConfig
from features.simulation.generator import SimulatedData

#: The simulation's settings beside ``truth.parquet``: the prior of the ideal observer.
CONFIG_FILE = "simulation.json"

#: ISO 8601 with microseconds and a ``+00:00`` offset, e.g. ``2024-01-01T00:00:00.123456+00:00``;
#: read back by ``str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z")`` and by the canonical mapping.
CSV_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.6f%:z"

SimulationFormat = Literal["csv", "parquet"]


def _write(frame: pl.DataFrame, path: Path, fmt: SimulationFormat) -> Path:
    if fmt == "csv":
        # Nulls become empty fields, which the CSV reader of the ingest treats as missing.
        frame.write_csv(path, datetime_format=CSV_DATETIME_FORMAT)
    else:
        frame.write_parquet(path)
    return path


def write_simulation(
    data: SimulatedData,
    out_dir: Path,
    fmt: SimulationFormat,
    config: SimulationConfig | None = None,
) -> dict[str, Path]:
    """Write ``events`` and ``contacts`` as ``fmt`` and ``truth`` as Parquet into ``out_dir``,
    and with ``config`` (the one ``data`` was simulated with) ``simulation.json``.

    Returns ``{"events": ..., "contacts": ..., "truth": ...[, "config": ...]}``. Files are
    ``events.csv``/``events.parquet``, ``contacts.csv``/``contacts.parquet`` and
    ``truth.parquet``; existing files are overwritten. ``out_dir`` is created if needed.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "events": _write(data.events, out_dir / f"events.{fmt}", fmt),
        "contacts": _write(data.contacts, out_dir / f"contacts.{fmt}", fmt),
        # Truth keeps its native types (booleans, datetimes) only in Parquet.
        "truth": _write(data.truth, out_dir / "truth.parquet", "parquet"),
    }
    if config is not None:
        files["config"] = out_dir / CONFIG_FILE
        files["config"].write_text(config.to_json(), encoding="utf-8")
    return files
