"""Benchmark: the real-time API under a real load generator on 127.0.0.1, next to the
framework ceiling and ``mlflow models serve`` of the same model, in the same run.

    python -m benchmarks.api [--seconds 5] [--visitors 20000] [--trees 200] [--no-mlflow]
                             [--workers 1]

Untimed setup in a work folder: a simulated lake, a LightGBM model with the scoring-spec
layout registered as ``propensity@champion`` in a SQLite MLflow store, one batch run that
fills the SQLite score store. Then three servers, each ``--workers`` uvicorn workers (uvloop,
httptools; default one) in its own process:

- ``constant``: a minimal FastAPI app whose endpoint returns a constant (the ceiling);
- ``ours``: ``serving.api.app`` (lookups ``GET /v1/visitors/{id}`` over random scored visitors;
  ``POST /v1/events`` of one event for a random visitor: validate, append, re-score, re-route,
  store, with the top features left for the next lookup, the default; then lookups again,
  of records now mostly re-scored in real time and explained at their first read); then with
  ``explain_events=inline`` (TreeSHAP in every event answer), events at concurrency 16;
- ``mlflow``: ``mlflow models serve --env-manager local`` answering one-record
  ``/invocations`` (what a user would otherwise deploy).

Requests go to every scored visitor (about 14,000 of 20,000 simulated), as a shop's traffic
spreads over its visitors. Each event post adds to its visitor's stored history, which the
next re-score of that visitor reads: over a few thousand visitors histories grow fast enough
under load that the events rate falls from one run to the next on the same server.

Load generator: ``wrk`` (Debian package) with Lua scripts for random paths and POST bodies,
``--latency`` for p50/p99; without wrk, an asyncio client on httpx (slower: it shares the
two cores with the servers, so its numbers are lower bounds). Each measurement runs
``--seconds`` at concurrency 1 and 16; after each events run, the requests re-scored per batch
(from the server's ``/metrics``; with one worker only). Last line: ``RESULT lookup_rps=…
lookup_p99_ms=… ratio_vs_ceiling=… ratio_vs_mlflow=… events_rps=… events_p99_ms=…
events_inline_rps=… events_inline_p99_ms=… lookup_after_events_rps=… cpu_below_half_pct=…``
(concurrency 16). ``cpu_below_half_pct``: how often the machine's CPU ran at under half its
median speed in 5 ms windows, measured alone before the servers start
(``benchmarks.steadiness``): the percentiles are only as steady as that.

One module, longer than most, because the three servers, the load generator's scripts and
the table are one measurement and are read together.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.loadgen import Measurement, measure
from benchmarks.steadiness import Steadiness, measure_steadiness

HOST = "127.0.0.1"
API_KEY = "bench-key"
BIN = Path(sys.executable).parent


def constant_app() -> Any:
    """The framework ceiling: FastAPI returning a constant, configured as the API is (native
    OpenTelemetry off, as by default: see ``ServingSettings.opentelemetry``)."""
    from fastapi import FastAPI

    from serving.api.app import telemetry_config

    app = FastAPI(telemetry=telemetry_config(False))

    @app.get("/constant")
    async def constant() -> dict[str, bool]:
        return {"ok": True}

    return app


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def uvicorn_command(target: str, port: int, workers: int) -> list[str]:
    return [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]


@contextmanager
def server(
    command: list[str],
    port: int,
    ready_path: str,
    env: dict[str, str],
    log: Path,
    timeout: float = 180,
) -> Iterator[str]:
    """Start a server process, wait until ``ready_path`` answers 200, stop it after."""
    import httpx

    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited; see {log}")
            try:
                if httpx.get(base + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[:4]} not ready after {timeout:.0f} s; see {log}")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def batch_totals(base: str) -> tuple[float, float]:
    """(requests, batches) re-scored so far, from the server's ``/metrics``."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(base + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "propensity_event_batch_size":
            values = {sample.name: sample.value for sample in family.samples}
            return values["propensity_event_batch_size_sum"], values[
                "propensity_event_batch_size_count"
            ]
    raise RuntimeError("no propensity_event_batch_size in /metrics")


def register_model(tracking_uri: str, artifact_dir: Path, trees: int) -> str:
    """The benchmark model logged with training's ``log_scoring_model`` (production layout),
    registered as ``propensity@champion``."""
    import mlflow
    import pandas as pd

    from serving.testing import TINY_FEATURES, tiny_spec, tiny_training_data
    from training.tracking import Store, client_for, experiment_id, log_scoring_model

    store = Store(tracking_uri, artifact_dir.as_uri())
    client = client_for(store)
    spec, booster_text = tiny_spec(trees)
    example = pd.DataFrame(tiny_training_data(rows=3)[0], columns=list(TINY_FEATURES))
    with mlflow.start_run(experiment_id=experiment_id(client, store, "benchmark")):
        info = log_scoring_model(spec, booster_text, example, "propensity")
    version = str(info.registered_model_version)
    client.set_registered_model_alias("propensity", "champion", version)
    return version


def prepare(workdir: Path, visitors: int, trees: int, **serving: Any) -> dict[str, Any]:
    """Lake, registered model and filled store (untimed); ``serving``: more serving settings
    (``store="redis", redis_url=…`` for a Redis store)."""
    import polars as pl

    from serving.batch.job import score_visitors
    from serving.settings import ServingPaths, ServingSettings
    from serving.testing import TINY_FEATURES, simulated_lake

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    paths = ServingPaths.under(workdir / "data", f"sqlite:///{workdir / 'mlflow.db'}")
    simulated_lake(paths.lake_dir, visitors=visitors, days=40)
    register_model(paths.tracking_uri or "", workdir / "artifacts", trees)
    # Lookups unkeyed, as before.
    settings = ServingSettings(api_keys=(API_KEY,), open_reads=True, **serving)
    summary = score_visitors(settings, paths)
    scored = pl.read_parquet(summary.files["scores"]).get_column("visitor_id").to_list()
    return {
        "paths": paths,
        "settings": settings,
        "visitors": scored,
        "features": list(TINY_FEATURES),
    }


def event_body(visitor: str, moment: datetime) -> bytes:
    return orjson.dumps(
        {
            "visitor_id": visitor,
            "events": [
                {
                    "event_time": moment.isoformat(),
                    "event_name": "add_to_cart",
                    "item_id": "sku-1",
                    "price": 19.9,
                    "quantity": 1,
                }
            ],
        }
    )


def run_all(
    setup: dict[str, Any], seconds: float, with_mlflow: bool, logs: Path, workers: int
) -> dict[tuple[str, int], Measurement]:
    from serving.api.server import handoff_environment

    results: dict[tuple[str, int], Measurement] = {}
    visitors: list[str] = setup["visitors"]
    print(f"requests over {len(visitors):,} scored visitors")
    now = datetime.now(UTC).replace(microsecond=0)
    with ExitStack() as stack:
        port = free_port()
        base = stack.enter_context(
            server(
                uvicorn_command("benchmarks.api:constant_app", port, workers),
                port,
                "/constant",
                {},
                logs / "constant.log",
            )
        )
        for c in (1, 16):
            results[("constant", c)] = measure(base, "GET", ["/constant"], None, c, seconds)
        stack.close()
        port = free_port()
        env = handoff_environment(setup["settings"], setup["paths"])
        base = stack.enter_context(
            server(
                uvicorn_command("serving.api.server:app_from_handoff", port, workers),
                port,
                "/readyz",
                env,
                logs / "ours.log",
            )
        )
        lookups = [f"/v1/visitors/{v}" for v in visitors]
        bodies = [event_body(v, now) for v in visitors]
        for c in (1, 16):
            results[("lookup", c)] = measure(base, "GET", lookups, None, c, seconds)
        for c in (1, 16):
            before = batch_totals(base)
            results[("events", c)] = measure(
                base, "POST", ["/v1/events"], bodies, c, seconds, headers={"X-API-Key": API_KEY}
            )
            if workers > 1:  # each worker has its own /metrics: one answers, not all
                continue
            requests, batches = (a - b for a, b in zip(batch_totals(base), before, strict=True))
            print(
                f"events at concurrency {c}: {requests:,.0f} requests re-scored in "
                f"{batches:,.0f} batches ({requests / max(batches, 1):.1f} per batch)"
            )
        # The same visitors again: most records now come from real-time re-scores, whose
        # top features are computed at their first read.
        results[("lookup_rt", 16)] = measure(base, "GET", lookups, None, 16, seconds)
        stack.close()
        # The same server with top features computed in the event answer, not at first read.
        port = free_port()
        inline = setup["settings"].model_copy(update={"explain_events": "inline"})
        base = stack.enter_context(
            server(
                uvicorn_command("serving.api.server:app_from_handoff", port, workers),
                port,
                "/readyz",
                handoff_environment(inline, setup["paths"]),
                logs / "ours-inline.log",
            )
        )
        results[("ev_inline", 16)] = measure(
            base, "POST", ["/v1/events"], bodies, 16, seconds, headers={"X-API-Key": API_KEY}
        )
        stack.close()
        if with_mlflow:
            results.update(run_mlflow(setup, seconds, logs, workers))
    return results


def run_mlflow(
    setup: dict[str, Any], seconds: float, logs: Path, workers: int
) -> dict[tuple[str, int], Measurement]:
    port = free_port()
    command = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        "models:/propensity@champion",
        "--env-manager",
        "local",
        "-h",
        HOST,
        "-p",
        str(port),
        "-w",
        str(workers),
    ]
    env = {
        "MLFLOW_TRACKING_URI": str(setup["paths"].tracking_uri),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    row = [1.0] * len(setup["features"])
    body = orjson.dumps({"dataframe_split": {"columns": setup["features"], "data": [row]}})
    with server(command, port, "/ping", env, logs / "mlflow.log") as base:
        return {
            ("mlflow", c): measure(base, "POST", ["/invocations"], [body], c, seconds)
            for c in (1, 16)
        }


def report(results: dict[tuple[str, int], Measurement], steadiness: Steadiness) -> None:
    print(steadiness.summary())
    print(f"{'target':<10}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  tool")
    for (name, c), m in results.items():
        print(
            f"{name:<10}{c:>5}{m.rps:>10,.0f}{m.p50_ms:>9.2f}{m.p99_ms:>9.2f}{m.errors:>8}"
            f"  {m.tool}"
        )
    lookup, events = results[("lookup", 16)], results[("events", 16)]
    inline, after = results[("ev_inline", 16)], results[("lookup_rt", 16)]
    ceiling = results[("constant", 16)].rps
    mlflow = results.get(("mlflow", 16))
    vs_mlflow = f"{lookup.rps / mlflow.rps:.1f}" if mlflow and mlflow.rps else "nan"
    if mlflow and mlflow.rps:
        print(f"events vs mlflow: {events.rps / mlflow.rps:.1f}x")
    print(
        f"RESULT lookup_rps={lookup.rps:.0f} lookup_p99_ms={lookup.p99_ms:.2f} "
        f"ratio_vs_ceiling={lookup.rps / ceiling:.2f} ratio_vs_mlflow={vs_mlflow} "
        f"events_rps={events.rps:.0f} events_p99_ms={events.p99_ms:.2f} "
        f"events_inline_rps={inline.rps:.0f} events_inline_p99_ms={inline.p99_ms:.2f} "
        f"lookup_after_events_rps={after.rps:.0f} "
        f"cpu_below_half_pct={steadiness.below_half_pct:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--visitors", type=int, default=20_000, help="simulated visitors")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--no-mlflow", action="store_true", help="skip mlflow models serve")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes of each of the three servers"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="emptied first, kept after (for the logs)"
    )
    args = parser.parse_args(argv)
    if args.workdir is not None:
        shutil.rmtree(args.workdir, ignore_errors=True)  # a fresh lake and registry each run
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="propensity-bench-api-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        setup = prepare(workdir, args.visitors, args.trees)
        steadiness = measure_steadiness()  # before any server starts: the machine alone
        report(run_all(setup, args.seconds, not args.no_mlflow, logs, args.workers), steadiness)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
