"""Ingest speed and memory: our validated, de-duplicated, partitioned, transactional ingest
against what a user would write by hand.

    python -m benchmarks.ingest [--quick] [--inputs DIR]

Simulates 10M events (1M with --quick) and writes them as canonical CSV and gzip CSV; the
50M-event file (5M with --quick) is five copies under other visitor ids (distinct events,
five times the visitors). Inputs are kept in ``--inputs`` and reused by later runs (not
timed). Then, each in a fresh process, on the same files: ``pandas.read_csv`` +
``to_parquet`` and ``polars.read_csv`` + ``write_parquet`` (no validation, de-duplication
or partitions) and ``propensity ingest``'s library path into an empty lake, with the default
memory budget (``INGEST__MAX_MEMORY_MB``). Last line:
``RESULT events_per_s=… ratio_vs_pandas=… ratio_vs_polars=… peak_mb=… peak_mb_50m=…
scaling_50m_over_10m=…`` (speed and ratios: 10M plain CSV; peaks: the larger of plain and
gzip).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.measure import run_step

MODULE = "benchmarks.ingest"
_COPIES = 5


def prepare(events: int, inputs: Path) -> dict[str, Any]:
    """``events_<n>.csv`` (+ ``.csv.gz``) and the five-times-larger file, if not there yet."""
    import polars as pl

    from features.simulation import events_for_target, simulate

    inputs.mkdir(parents=True, exist_ok=True)
    base, large = inputs / f"events_{events}.csv", inputs / f"events_{events * _COPIES}.csv"
    if not base.exists():
        simulated = simulate(events_for_target(events)).events
        simulated.write_csv(base.with_suffix(".tmp"))
        base.with_suffix(".tmp").replace(base)
    if not large.exists():
        frame = pl.read_csv(base, infer_schema=False)
        with large.with_suffix(".tmp").open("wb") as out:
            for copy in range(_COPIES):  # other visitors, same days: distinct events
                prefix = pl.lit(f"c{copy}")
                renamed = frame.with_columns(
                    pl.concat_str(prefix, pl.col(c)).alias(c) for c in ("visitor_id", "session_id")
                )
                renamed.write_csv(out, include_header=copy == 0)
        large.with_suffix(".tmp").replace(large)
    for path in (base, large):
        packed = path.with_name(path.name + ".gz")
        if not packed.exists():
            with path.open("rb") as raw, gzip.open(packed.with_suffix(".tmp"), "wb", 1) as out:
                shutil.copyfileobj(raw, out, 16 << 20)
            packed.with_suffix(".tmp").replace(packed)
    return {"base": str(base), "large": str(large)}


def run_pandas(csv: Path, out: Path) -> dict[str, Any]:
    import pandas as pd

    started = time.perf_counter()
    pd.read_csv(csv).to_parquet(out)
    return {"wall": time.perf_counter() - started}


def run_polars(csv: Path, out: Path) -> dict[str, Any]:
    import polars as pl

    started = time.perf_counter()
    pl.read_csv(csv).write_parquet(out)
    return {"wall": time.perf_counter() - started}


def run_ours(csv: Path, work: Path) -> dict[str, Any]:
    from features.ingest.budget import IngestBudget
    from features.ingest.mapping import builtin_mapping
    from features.ingest.pipeline import ingest_file
    from features.ingest.validate import ValidationLimits
    from propensity.settings import IngestSettings

    budget = IngestBudget.from_memory(IngestSettings().max_memory_mb)
    limits = ValidationLimits(
        min_event_time=datetime(1990, 1, 1, tzinfo=UTC),
        max_event_time=datetime.now(UTC) + timedelta(days=1),
    )
    started = time.perf_counter()
    report = ingest_file(
        csv, mapping=builtin_mapping("canonical"), lake_dir=work / "lake",
        quarantine_dir=work / "quarantine", limits=limits, batch_rows=budget.batch_rows,
        day_rows=budget.day_rows, held_bytes=budget.held_bytes, ingest_id="bench",
    )  # fmt: skip
    return {"wall": time.perf_counter() - started, "accepted": report.accepted,
            "rows_read": report.rows_read}  # fmt: skip


STEPS: dict[str, Any] = {
    "prepare": lambda events, inputs: prepare(int(events), Path(inputs)),
    "pandas": lambda csv, out: run_pandas(Path(csv), Path(out) / "out.parquet"),
    "polars": lambda csv, out: run_polars(Path(csv), Path(out) / "out.parquet"),
    "ours": lambda csv, out: run_ours(Path(csv), Path(out)),
}


def _measure(name: str, csv: str, events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as out:
        result = run_step(MODULE, name, csv, out)
    if name == "ours":
        assert result["rows_read"] == events, "every row must be read"
        assert result["accepted"] == events, "simulated events are all valid and distinct"
    print(f"{name:8s} {Path(csv).name:28s} {result['wall']:8.2f} "
          f"{events / result['wall']:12,.0f} {result['peak_mb']:8.0f}", flush=True)  # fmt: skip
    return result


def _rows(csv: str) -> int:
    with open(csv, "rb") as handle:  # noqa: PTH123 (a plain count of lines)
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 24), b"")) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M and 5M events, not 10M and 50M")
    parser.add_argument(
        "--inputs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "propensity-bench-ingest",
        help="folder for the simulated input files (kept for the next run)",
    )
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, *rest = args.step
        print(json.dumps(STEPS[name](*rest)))
        return
    events = 1_000_000 if args.quick else 10_000_000
    files = run_step(MODULE, "prepare", str(events), str(args.inputs))
    print(f"{'step':8s} {'file':28s} {'seconds':>8s} {'events/s':>12s} {'peak MB':>8s}")
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    for size in ("base", "large"):
        n = _rows(files[size])
        for suffix in ("", ".gz"):
            for name in ("pandas", "polars", "ours"):
                results[size, suffix, name] = _measure(name, files[size] + suffix, n)
        results[size, "", "n"] = {"events": n}
    n = results["base", "", "n"]["events"]
    ours, large = results["base", "", "ours"], results["large", "", "ours"]
    peak = max(results["base", s, "ours"]["peak_mb"] for s in ("", ".gz"))
    peak_large = max(results["large", s, "ours"]["peak_mb"] for s in ("", ".gz"))
    for suffix in ("", ".gz"):
        for size in ("base", "large"):
            mine = results[size, suffix, "ours"]["wall"]
            print(f"{size} {suffix or 'plain'}: ours / pandas "
                  f"{results[size, suffix, 'pandas']['wall'] / mine:.2f}x, ours / polars "
                  f"{results[size, suffix, 'polars']['wall'] / mine:.2f}x")  # fmt: skip
    print(
        f"RESULT events_per_s={n / ours['wall']:.0f} "
        f"ratio_vs_pandas={results['base', '', 'pandas']['wall'] / ours['wall']:.2f} "
        f"ratio_vs_polars={results['base', '', 'polars']['wall'] / ours['wall']:.2f} "
        f"peak_mb={peak:.0f} peak_mb_50m={peak_large:.0f} "
        f"scaling_50m_over_10m={large['wall'] / ours['wall']:.2f}"
    )


if __name__ == "__main__":
    main()
