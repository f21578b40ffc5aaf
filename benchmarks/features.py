"""Benchmark: batch features for one snapshot from simulated events in the Parquet lake.

    python -m benchmarks.features [--quick] [--no-spark] [--workdir DIR]

Simulates 10M events (~1.2M visitors, 30 days; 1M with --quick) with ``features.simulation``
and writes them as the event lake (untimed). Each measured step then runs in a fresh child
process, timed from reading the lake to the written Parquet output, with the peak RSS of
the child's whole process tree (the JVM included for Spark) sampled every 20 ms:

- ``polars``: the pipeline (``features.sharding``, visitor shards of ~4M events);
- ``pandas``: the idiomatic pandas baseline (``benchmarks.features_pandas``), same features,
  checked equal to the pipeline's output with ``assert_allclose``;
- ``spark``: the same definitions on Spark local[2] (``features.batch``);
- ``polars`` on 50M events (five 10M simulations with distinct ids) for the scaling figure
  (skipped with --quick).

Last line: ``RESULT events_per_s=… ratio_vs_pandas=… peak_mb=… scaling_50m_over_10m=…``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.measure import run_step

SIM_DAYS = 30
AS_OF = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=SIM_DAYS)  # simulator's default start
CHUNK_EVENTS = 10_000_000


# ---- child steps (each runs in its own process) -------------------------------------------


def prepare_lake(events: int, chunk: int, lakes: list[Path]) -> dict[str, Any]:
    import polars as pl

    from features.ingest.lake_writer import write_partitions
    from features.simulation import events_for_target, simulate

    config = replace(events_for_target(events, days=SIM_DAYS), seed=42 + chunk)
    simulated = simulate(config).events
    if chunk:  # distinct visitors, sessions and orders per chunk
        ids = ["visitor_id", "session_id", "transaction_id", "user_id"]
        simulated = simulated.with_columns((f"c{chunk}-" + pl.col(c)).alias(c) for c in ids)
    for lake in lakes:
        write_partitions(simulated, lake, f"bench{chunk}")
    return {"events": simulated.height, "visitors": simulated["visitor_id"].n_unique()}


def run_polars(lake: Path, out: Path, events: int) -> dict[str, Any]:
    from features.sharding import shards_for, write_features_sharded

    shards = shards_for(events)
    start = time.perf_counter()
    write_features_sharded(lake, AS_OF, out, shards=shards)
    return {"wall": time.perf_counter() - start, "shards": shards}


def run_pandas(lake: Path, out: Path) -> dict[str, Any]:
    from benchmarks.features_pandas import pandas_features

    start = time.perf_counter()
    pandas_features(lake, AS_OF).to_parquet(out / "features.parquet")
    return {"wall": time.perf_counter() - start}


def run_spark(lake: Path, out: Path) -> dict[str, Any]:
    from features.batch import build_features, write_features
    from features.engines import spark_session

    started = time.perf_counter()
    spark = spark_session(
        "local[2]", conf={"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "3g"}
    )
    spark.sparkContext.setLogLevel("ERROR")
    start = time.perf_counter()
    write_features(build_features(lake, AS_OF, engine="spark", spark=spark), out / "spark")
    wall = time.perf_counter() - start
    spark.stop()
    return {"wall": wall, "startup": start - started}


def run_online(lake: Path, visitors: int = 2000) -> dict[str, Any]:
    """Per-visitor latency of the online evaluator vs the batch plan on a one-visitor frame."""
    import numpy as np
    import polars as pl

    from features.batch import build_features
    from features.lake import scan_events
    from features.online import OnlineFeatureEvaluator

    window = scan_events(lake, start=AS_OF - timedelta(days=30), end=AS_OF)
    ids = window.select("visitor_id").unique().sort("visitor_id").head(visitors)
    events = window.join(ids, on="visitor_id").collect()
    histories = [part.to_dicts() for part in events.partition_by("visitor_id")]
    evaluator = OnlineFeatureEvaluator()
    online = []
    for history in histories:
        start = time.perf_counter()
        evaluator.vector(history, AS_OF)
        online.append(time.perf_counter() - start)
    batch = []
    for history in histories[:50]:
        frame = pl.DataFrame(history, schema=events.schema)
        start = time.perf_counter()
        build_features(frame, AS_OF).collect()
        batch.append(time.perf_counter() - start)
    sizes = [len(h) for h in histories]
    return {
        "online_p50_us": float(np.median(online)) * 1e6,
        "online_p99_us": float(np.quantile(online, 0.99)) * 1e6,
        "batch_plan_p50_ms": float(np.median(batch)) * 1e3,
        "events_per_visitor_mean": float(np.mean(sizes)),
        "max_events": max(sizes),
    }


# ---- parent ----------------------------------------------------------------------------------


def child(step: str, *args: str) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its result plus the tree's peak RSS in MB."""
    return run_step("benchmarks.features", step, *args)


def check_same_features(polars_dir: Path, pandas_dir: Path) -> str:
    import polars as pl

    from features.testing import assert_features_close

    pipeline = pl.read_parquet(polars_dir / "*.parquet")
    baseline = pl.read_parquet(pandas_dir / "features.parquet")
    baseline = baseline.with_columns(
        pl.col(c).cast(t) for c, t in pipeline.schema.items() if c in baseline.columns
    )
    assert_features_close(baseline, pipeline)
    return (
        f"pandas baseline equals the pipeline on {pipeline.width - 2} features "
        f"x {pipeline.height:,} visitors (assert_allclose)"
    )


def line(name: str, events: int, result: dict[str, Any]) -> str:
    extra = "".join(f"  {k}={v}" for k, v in result.items() if k in ("shards",))
    if "startup" in result:
        extra += f"  (+{result['startup']:.1f} s session start)"
    return (
        f"{name:<14} wall {result['wall']:7.2f} s  events/s {events / result['wall']:>11,.0f}"
        f"  peak {result['peak_mb']:7,.0f} MB{extra}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1M events, no 50M run")
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark figure")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (deleted)")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--args", nargs="*", default=[], help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.step:
        print(json.dumps(STEPS[options.step](*options.args)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-features-", dir=options.workdir))
    try:
        run(work, quick=options.quick, spark=not options.no_spark)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, *, quick: bool, spark: bool) -> None:
    size = 1_000_000 if quick else CHUNK_EVENTS
    small, big = work / "lake_small", work / "lake_50m"
    first = child("prepare", "--args", str(size), "0", str(small), *([] if quick else [str(big)]))
    events, visitors = first["events"], first["visitors"]
    label = f"{events / 1e6:.0f}M"
    print(
        f"simulated {events:,} events, {visitors:,} visitors, {SIM_DAYS} days; "
        f"features as of {AS_OF:%Y-%m-%d} (lookback 30 days)",
        flush=True,
    )
    outputs = {name: work / f"out_{name}" for name in ("polars", "pandas", "spark", "big")}
    for out in outputs.values():
        out.mkdir()
    polars = child("polars", "--args", str(small), str(outputs["polars"]), str(events))
    print(line(f"polars {label}", events, polars), flush=True)
    pandas = child("pandas", "--args", str(small), str(outputs["pandas"]))
    print(line(f"pandas {label}", events, pandas), flush=True)
    print(check_same_features(outputs["polars"], outputs["pandas"]), flush=True)
    online = child("online", "--args", str(small))
    print(
        f"online         one visitor ({online['events_per_visitor_mean']:.1f} events mean, "
        f"max {online['max_events']}): p50 {online['online_p50_us']:.0f} us, p99 "
        f"{online['online_p99_us']:.0f} us; the batch plan on a one-visitor frame: p50 "
        f"{online['batch_plan_p50_ms']:.1f} ms",
        flush=True,
    )
    if spark:
        result = child("spark", "--args", str(small), str(outputs["spark"]))
        print(line(f"spark {label}", events, result), flush=True)
    scaling = "nan"
    if not quick:
        total = events
        for chunk in range(1, 5):
            total += child("prepare", "--args", str(size), str(chunk), str(big))["events"]
        large = child("polars", "--args", str(big), str(outputs["big"]), str(total))
        print(line(f"polars {total / 1e6:.0f}M", total, large), flush=True)
        scaling = f"{large['wall'] / polars['wall']:.2f}"
        print(f"scaling: {total / events:.2f}x the events took {scaling}x the time", flush=True)
    print(
        f"RESULT events_per_s={events / polars['wall']:.0f} "
        f"ratio_vs_pandas={pandas['wall'] / polars['wall']:.2f} "
        f"peak_mb={polars['peak_mb']:.0f} scaling_50m_over_10m={scaling}"
    )


def _prepare(events: str, chunk: str, *lakes: str) -> dict[str, Any]:
    return prepare_lake(int(events), int(chunk), [Path(p) for p in lakes])


STEPS: dict[str, Any] = {
    "prepare": _prepare,
    "polars": lambda lake, out, events: run_polars(Path(lake), Path(out), int(events)),
    "pandas": lambda lake, out: run_pandas(Path(lake), Path(out)),
    "spark": lambda lake, out: run_spark(Path(lake), Path(out)),
    "online": lambda lake: run_online(Path(lake)),
}

if __name__ == "__main__":
    main()
