"""Ingest speed: our validated, de-duplicated, partitioned ingest vs plain pandas.

    python -m benchmarks.ingest [--quick]

Simulates N events (10M; 1M with --quick) and writes them as canonical CSV (not timed).
Then, each in a fresh process, on the same file: ``pandas.read_csv`` + ``to_parquet`` (the
baseline: no validation, no de-duplication, no partitions) and ``propensity ingest``'s
library path into an empty lake. Last line:
``RESULT events_per_s=… ratio_vs_pandas=… peak_mb=…``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.measure import run_step

MODULE = "benchmarks.ingest"


def prepare(events: int, work: Path) -> dict[str, Any]:
    from features.simulation import events_for_target, simulate
    from features.simulation.writer import write_simulation

    started = time.perf_counter()
    data = simulate(events_for_target(events))
    simulated = time.perf_counter() - started
    files = write_simulation(data, work, "csv")
    return {"events": data.events.height, "simulate_s": simulated, "csv": str(files["events"])}


def run_pandas(csv: Path, out: Path) -> dict[str, Any]:
    import pandas as pd

    started = time.perf_counter()
    pd.read_csv(csv).to_parquet(out)
    return {"wall": time.perf_counter() - started}


def run_ours(csv: Path, lake: Path) -> dict[str, Any]:
    from features.ingest.mapping import builtin_mapping
    from features.ingest.pipeline import ingest_file
    from features.ingest.validate import ValidationLimits

    limits = ValidationLimits(
        min_event_time=datetime(1990, 1, 1, tzinfo=UTC),
        max_event_time=datetime.now(UTC) + timedelta(days=1),
    )
    started = time.perf_counter()
    report = ingest_file(
        csv, mapping=builtin_mapping("canonical"), lake_dir=lake / "lake",
        quarantine_dir=lake / "quarantine", limits=limits, batch_rows=1_000_000,
        ingest_id="bench",
    )  # fmt: skip
    return {"wall": time.perf_counter() - started, "accepted": report.accepted,
            "rows_read": report.rows_read}  # fmt: skip


STEPS: dict[str, Any] = {
    "prepare": lambda events, work: prepare(int(events), Path(work)),
    "pandas": lambda csv, out: run_pandas(Path(csv), Path(out)),
    "ours": lambda csv, lake: run_ours(Path(csv), Path(lake)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M events instead of 10M")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, *rest = args.step
        print(json.dumps(STEPS[name](*rest)))
        return
    events = 1_000_000 if args.quick else 10_000_000
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        prepared = run_step(MODULE, "prepare", str(events), str(work))
        n, csv = prepared["events"], prepared["csv"]
        print(f"simulated {n:,} events in {prepared['simulate_s']:.1f} s "
              f"({n / prepared['simulate_s']:,.0f} events/s)")  # fmt: skip
        pandas = run_step(MODULE, "pandas", csv, str(work / "pandas.parquet"))
        ours = run_step(MODULE, "ours", csv, str(work / "ours"))
    assert ours["rows_read"] == n, "every simulated row must be read"
    print(f"{'step':32s} {'seconds':>8s} {'events/s':>12s} {'peak MB':>8s}")
    for name, result in (("pandas read_csv + to_parquet", pandas), ("propensity ingest", ours)):
        print(f"{name:32s} {result['wall']:8.2f} {n / result['wall']:12,.0f} "
              f"{result['peak_mb']:8.0f}")  # fmt: skip
    print(
        f"RESULT events_per_s={n / ours['wall']:.0f} "
        f"ratio_vs_pandas={pandas['wall'] / ours['wall']:.2f} peak_mb={ours['peak_mb']:.0f}"
    )


if __name__ == "__main__":
    main()
