"""Reliability under load: the API keeps answering while the champion changes.

    python -m benchmarks.reliability [--quick] [--seconds 180] [--reloads 6] [--concurrency 16]

Untimed setup in a work folder (as ``benchmarks.api``): a simulated lake, the benchmark
model registered as ``propensity@champion`` plus ``--reloads`` more versions (other seeds),
one batch run filling the SQLite score store. Then the API runs in its own uvicorn process
(one worker, uvloop, httptools) on 127.0.0.1 and a load generator in another process
(asyncio + httpx, ``--concurrency`` connections, each request drawn at random: 80%
``GET /v1/visitors/{id}``, 15% ``POST /v1/events``, 5% ``POST /v1/score``) drives it for
``--seconds``. The first 10% is warm-up; the first reload comes at 35% of the run, then the
rest spread evenly to 85% (a slow reload delays the next): each moves the alias to the next
version and calls ``POST /v1/admin/reload`` (the new version is compiled and swapped in
while requests flow).

Reported: requests sent, non-2xx answers and transport errors (target 0), p50/p99 latency
per endpoint before the first reload and during the reloads, the server's RSS: its largest
value over its value just after the first reload and over its value after warm-up (growth
target: within 10%; versions compile in a child process, ``serving.model.compiled``).
Bounded: traffic only to 127.0.0.1, for ``--seconds``. Last line: ``RESULT requests=…
non_2xx=… errors=… reloads=… lookup_p99_before_ms=… lookup_p99_during_ms=…
events_p99_before_ms=… events_p99_during_ms=… score_p99_before_ms=… score_p99_during_ms=…
rss_growth_pct=… (from warm-up) rss_growth_from_first_reload_pct=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.api import API_KEY, event_body, free_port, server, uvicorn_command

ENDPOINTS = ("lookup", "events", "score")
MIX = (0.80, 0.15, 0.05)
WARMUP_SHARE, FIRST_RELOAD_SHARE, LAST_RELOAD_SHARE = 0.10, 0.35, 0.85


def register_versions(tracking_uri: str, artifact_dir: Path, trees: int, seeds: list[int]) -> None:
    """More versions of the benchmark model (other seeds), registered but not promoted."""
    import mlflow
    import pandas as pd

    from serving.testing import TINY_FEATURES, tiny_spec, tiny_training_data
    from training.tracking import Store, client_for, experiment_id, log_scoring_model

    store = Store(tracking_uri, artifact_dir.as_uri())
    client = client_for(store)
    example = pd.DataFrame(tiny_training_data(rows=3)[0], columns=list(TINY_FEATURES))
    for seed in seeds:
        spec, booster_text = tiny_spec(trees, seed)
        with mlflow.start_run(experiment_id=experiment_id(client, store, "benchmark")):
            log_scoring_model(spec, booster_text, example, "propensity")


def _move_alias(tracking_uri: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(
        "propensity", "champion", version
    )


@dataclass(frozen=True)
class Plan:
    base: str
    seconds: float
    concurrency: int
    visitors: list[str]
    out: Path


def _requests(plan: Plan, rng: random.Random) -> tuple[int, str, str, bytes | None]:
    """(endpoint index, method, path, body) of one random request of the mix."""
    visitor = rng.choice(plan.visitors)
    kind = rng.choices(range(3), MIX)[0]
    if kind == 0:
        return 0, "GET", f"/v1/visitors/{visitor}", None
    now = datetime.now(UTC).replace(microsecond=0)
    if kind == 1:
        return 1, "POST", "/v1/events", event_body(visitor, now)
    return 2, "POST", "/v1/score", event_body(visitor, now)


async def _drive(plan: Plan) -> None:
    import httpx

    started = time.perf_counter()
    deadline = started + plan.seconds
    rows: list[tuple[float, int, int, float]] = []  # (start offset s, endpoint, status, s)
    failures: list[str] = []
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}

    async def worker(client: httpx.AsyncClient, seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            kind, method, path, body = _requests(plan, rng)
            begun = time.perf_counter()
            try:
                answer = await client.request(method, path, content=body, headers=headers)
                status = answer.status_code
            except httpx.HTTPError as problem:
                status = 0  # transport error: no answer
                failures.append(f"{type(problem).__name__}: {problem}"[:200])
            rows.append((begun - started, kind, status, time.perf_counter() - begun))

    limits = httpx.Limits(max_connections=plan.concurrency)
    async with httpx.AsyncClient(base_url=plan.base, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client, seed) for seed in range(plan.concurrency)))
    np.save(plan.out, np.array(rows, dtype=np.float64))
    plan.out.with_suffix(".errors.json").write_bytes(orjson.dumps(failures))


def _load_process(plan: Plan) -> None:
    asyncio.run(_drive(plan))


def _percentile_ms(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q) * 1000) if len(values) else float("nan")


def run(setup: dict[str, Any], args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    import httpx
    import psutil

    from serving.api.server import handoff_environment

    tracking_uri = str(setup["paths"].tracking_uri)
    versions = [str(v) for v in range(2, 2 + args.reloads)]
    port = free_port()
    env = handoff_environment(setup["settings"], setup["paths"])
    with server(
        uvicorn_command("serving.api.server:app_from_handoff", port, 1), port, "/readyz", env,
        logs / "api.log",
    ) as base:  # fmt: skip
        api = psutil.Process(_listening_pid(port))
        visitors = setup["visitors"][:2000]
        plan = Plan(base, args.seconds, args.concurrency, visitors, logs / "rows.npy")
        load = multiprocessing.get_context("spawn").Process(target=_load_process, args=(plan,))
        started = time.monotonic()
        load.start()
        span = LAST_RELOAD_SHARE - FIRST_RELOAD_SHARE
        moments = [
            FIRST_RELOAD_SHARE + span * i / max(1, args.reloads - 1) for i in range(args.reloads)
        ]
        rss: list[tuple[float, int]] = []
        reloads: list[tuple[float, int, str]] = []
        while load.is_alive():
            elapsed = (time.monotonic() - started) / args.seconds
            rss.append((elapsed, api.memory_info().rss))
            if moments and elapsed >= moments[0]:
                moments.pop(0)
                version = versions[len(reloads)]
                _move_alias(tracking_uri, version)
                answer = httpx.post(
                    base + "/v1/admin/reload", headers={"X-API-Key": API_KEY}, timeout=120
                )
                reloads.append((elapsed, answer.status_code, answer.json().get("model_version")))
                print(f"reload at {elapsed:.0%} of the run: {answer.status_code} {answer.text}")
            time.sleep(0.5)
        load.join()
    rows = np.load(plan.out)
    failures = orjson.loads(plan.out.with_suffix(".errors.json").read_bytes())
    return {"rows": rows, "rss": rss, "reloads": reloads, "failures": failures}


def _listening_pid(port: int) -> int:
    """The process listening on ``port`` (the uvicorn server)."""
    import psutil

    for connection in psutil.net_connections("tcp"):
        listening = connection.status == "LISTEN" and connection.pid is not None
        if listening and connection.laddr and connection.laddr.port == port:
            return int(connection.pid)
    raise RuntimeError(f"no process listens on port {port}")


def report(result: dict[str, Any], seconds: float) -> str:
    rows, reloads = result["rows"], result["reloads"]
    share = rows[:, 0] / seconds
    status = rows[:, 2]
    first_reload = reloads[0][0] if reloads else 1.0
    before = (share >= WARMUP_SHARE) & (share < first_reload)
    during = share >= first_reload
    non_2xx = int(((status >= 300) | ((status < 200) & (status > 0))).sum())
    errors = int((status == 0).sum())
    print(f"requests {len(rows):,} in {seconds:.0f} s ({len(rows) / seconds:,.0f}/s)")
    print(f"{'endpoint':<9}{'phase':>8}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    fields: dict[str, str] = {}
    for kind, name in enumerate(ENDPOINTS):
        for phase, mask in (("before", before), ("during", during)):
            chosen = mask & (rows[:, 1] == kind)
            latency = rows[chosen, 3]
            bad = int((status[chosen] < 200).sum() + (status[chosen] >= 300).sum())
            p99 = _percentile_ms(latency, 99)
            print(
                f"{name:<9}{phase:>8}{chosen.sum():>10,}{_percentile_ms(latency, 50):>9.2f}"
                f"{p99:>9.2f}{bad:>9}"
            )
            fields[f"{name}_p99_{phase}_ms"] = f"{p99:.2f}"
    for failure, count in Counter(result["failures"]).most_common(5):
        print(f"transport error x{count}: {failure}")
    rss = np.array(result["rss"], dtype=np.float64)
    warm = rss[rss[:, 0] >= WARMUP_SHARE]
    # The measure is growth after warm-up; growth from just after the first swap is
    # shown too (a swap that loaded lasting machinery would show up as the gap between them).
    settled = rss[rss[:, 0] > first_reload + 0.05]
    growth = (settled[:, 1].max() / settled[0, 1] - 1) * 100 if len(settled) else float("nan")
    if len(warm) and len(settled):
        print(
            f"RSS after warm-up {warm[0, 1] / 2**20:,.0f} MB, after the first reload "
            f"{settled[0, 1] / 2**20:,.0f} MB, largest after {settled[:, 1].max() / 2**20:,.0f}"
            f" MB, at the end {settled[-1, 1] / 2**20:,.0f} MB"
        )
    from_warm = (warm[:, 1].max() / warm[0, 1] - 1) * 100 if len(warm) else float("nan")
    ok_reloads = sum(1 for _, code, _ in reloads if code == 200)
    print(f"reloads {ok_reloads}/{len(reloads)} succeeded: versions {[v for *_, v in reloads]}")
    return (
        f"RESULT requests={len(rows)} non_2xx={non_2xx} errors={errors} reloads={ok_reloads} "
        + " ".join(f"{k}={v}" for k, v in fields.items())
        + f" rss_growth_pct={from_warm:.1f} rss_growth_from_first_reload_pct={growth:.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="30 s, 2 reloads: a smoke test")
    parser.add_argument("--seconds", type=float, default=None, help="load duration (180)")
    parser.add_argument("--reloads", type=int, default=None, help="champion changes (6)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--visitors", type=int, default=3000, help="simulated visitors")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="emptied first, kept after (for the logs)"
    )
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (30.0 if args.quick else 180.0)
    args.reloads = args.reloads or (2 if args.quick else 6)
    if args.workdir is not None:
        shutil.rmtree(args.workdir, ignore_errors=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="propensity-bench-reliability-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        from benchmarks.api import prepare

        setup = prepare(workdir, args.visitors, args.trees)
        register_versions(
            str(setup["paths"].tracking_uri),
            workdir / "artifacts",
            args.trees,
            list(range(1, 1 + args.reloads)),
        )
        print(orjson.dumps({"seconds": args.seconds, "reloads": args.reloads}).decode())
        print(report(run(setup, args, logs), args.seconds))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    main()
