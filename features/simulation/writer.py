"""Write simulated data to disk in the formats that ``propensity ingest`` reads, and keep the
state of campaign rounds (``ROUNDS_FILE``): how far the shop's events have been revealed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

from features.simulation.config import SimulationConfig
from features.simulation.generator import SimulatedData
from features.simulation.identifiers import synthetic_identifiers

#: The simulation's settings beside ``truth.parquet``: the prior of the ideal observer.
CONFIG_FILE = "simulation.json"
#: Campaign rounds so far (``RoundState``), beside the simulation's settings.
ROUNDS_FILE = "rounds.json"

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


def _with_identifiers(contacts: pl.DataFrame) -> pl.DataFrame:
    """The contacts file as a shop would export it: consent plus synthetic identifiers."""
    identifiers = synthetic_identifiers(contacts.get_column("visitor_id"))
    return contacts.join(identifiers, on="visitor_id", how="left", maintain_order="left")


def write_simulation(
    data: SimulatedData,
    out_dir: Path,
    fmt: SimulationFormat,
    config: SimulationConfig | None = None,
    *,
    reveal_until: datetime | None = None,
) -> dict[str, Path]:
    """Write ``events`` and ``contacts`` as ``fmt`` and ``truth`` as Parquet into ``out_dir``,
    and with ``config`` (the one ``data`` was simulated with) ``simulation.json`` and the
    campaign rounds' state. With ``reveal_until``, only the events before it are written:
    campaign rounds (``propensity respond``) reveal the rest, changed by the contacts.

    Returns ``{"events": ..., "contacts": ..., "truth": ...[, "config": ..., "rounds": ...]}``.
    Files are ``events.csv``/``events.parquet``, ``contacts.csv``/``contacts.parquet`` and
    ``truth.parquet``; existing files are overwritten. ``out_dir`` is created if needed.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    events = data.events
    if reveal_until is not None:
        events = events.filter(pl.col("event_time") < reveal_until)
    files = {
        "events": _write(events, out_dir / f"events.{fmt}", fmt),
        "contacts": _write(_with_identifiers(data.contacts), out_dir / f"contacts.{fmt}", fmt),
        # Truth keeps its native types (booleans, datetimes) only in Parquet.
        "truth": _write(data.truth, out_dir / "truth.parquet", "parquet"),
    }
    if config is not None:
        files["config"] = out_dir / CONFIG_FILE
        files["config"].write_text(config.to_json(), encoding="utf-8")
        files["rounds"] = write_rounds(out_dir, RoundState(reveal_until or config.end))
    return files


@dataclass
class RoundState:
    """How far the shop's events are revealed, and the orders that contacts cancelled (their
    refunds, when they come, are cancelled too)."""

    revealed_until: datetime
    prevented_transactions: list[str] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)


def read_rounds(out_dir: Path) -> RoundState:
    raw = json.loads((out_dir / ROUNDS_FILE).read_text(encoding="utf-8"))
    return RoundState(
        datetime.fromisoformat(raw["revealed_until"]),
        list(raw.get("prevented_transactions", [])),
        list(raw.get("rounds", [])),
    )


def write_rounds(out_dir: Path, state: RoundState) -> Path:
    """Replace the state file in one step (a crash leaves the previous state)."""
    path = out_dir / ROUNDS_FILE
    staging = path.with_suffix(".tmp")
    plain = {**asdict(state), "revealed_until": state.revealed_until.isoformat()}
    staging.write_text(json.dumps(plain, indent=1, default=str), encoding="utf-8")
    staging.replace(path)
    return path
