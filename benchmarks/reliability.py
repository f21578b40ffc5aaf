"""Reliability under load: the API keeps answering while the champion changes and while
three faults hit it.

    python -m benchmarks.reliability [--quick] [--seconds 180] [--reloads 6] [--concurrency 16]
                                     [--kill-at store-switched]

Untimed setup in a work folder (as ``benchmarks.api``): a redis-server of its own on
127.0.0.1 (Debian package ``redis-server``; no persistence) as the score store, a simulated
lake, the benchmark model registered as ``propensity@champion`` plus ``--reloads`` more
versions (other seeds), one batch run filling the store. Then the API runs in its own uvicorn
process (one worker, uvloop, httptools) on 127.0.0.1 and a load generator in another process
(asyncio + httpx, ``--concurrency`` connections, each request drawn at random: 80%
``GET /v1/visitors/{id}``, 15% ``POST /v1/events``, 5% ``POST /v1/score``) drives it for
``--seconds``. The first 10% is warm-up; the reloads are spread from 20% to 40% of the run (a
slow reload delays the next): each moves the alias to the next version and calls
``POST /v1/admin/reload`` (the new version is compiled and swapped in while requests flow).
Then the faults, one after the other (a slow one delays the next), from 50%:

- ``cache`` (50%): every compiled object under ``serving/models/compiled/`` overwritten with
  random bytes and every cached ``scoring.json`` with broken JSON, then
  ``POST /v1/admin/reload`` (it must heal the cache from the registry and answer 200);
- ``empty_store`` (60%): ``FLUSHALL`` on the redis-server, then ``propensity score`` publishes
  again (lookups answer 503 "No batch run" in between: the documented window);
- ``killed_publish`` (70%): a batch run SIGKILLed (by itself: no ``finally``, no flush) right
  after the ``--kill-at`` step of its publish (``serving.batch.publish.STEPS``), then
  ``propensity score`` for the same ``as_of`` again; the API's run and ``latest.json`` must then
  name the same run.

Reported: requests sent, non-2xx answers outside the documented 503 windows and transport
errors (target 0), per fault its 503s, how long they lasted (first 503 answered to last)
and any other non-2xx (target 0), p50/p99 latency per endpoint before the first reload,
during the reloads and during the faults, the server's RSS: its largest value over its value
just after the first reload and over its value after warm-up (growth target: within 10%;
versions compile in a child process, ``serving.model.compiled``). Bounded: traffic only to
127.0.0.1, for ``--seconds``. Last line: ``RESULT requests=… non_2xx=… errors=… reloads=…
lookup_p99_before_ms=… lookup_p99_during_ms=… lookup_p99_faults_ms=… (events_…, score_…)
rss_growth_pct=… (from warm-up) rss_growth_from_first_reload_pct=… faults=… (run of 3)
documented_503=… cache_503=… cache_window_s=… cache_other_non_2xx=… empty_store_503=…
empty_store_window_s=… empty_store_other_non_2xx=… killed_publish_503=…
killed_publish_window_s=… killed_publish_other_non_2xx=… killed_publish_consistent=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventFlag
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.api import API_KEY, BIN, HOST, event_body, free_port, server, uvicorn_command

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = ("lookup", "events", "score")
MIX = (0.80, 0.15, 0.05)
WARMUP_SHARE, FIRST_RELOAD_SHARE, LAST_RELOAD_SHARE = 0.10, 0.20, 0.40
#: The faults, in order, with the share of the run each starts at (a slow one delays the next).
FAULTS = (("cache", 0.50), ("empty_store", 0.60), ("killed_publish", 0.70))
#: Titles of the 503s the docs promise for a fault (docs/reliability.md): a store that lost
#: its published run answers "No batch run" until the next run is published.
DOCUMENTED_503_TITLES = frozenset({"No batch run"})


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


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A redis-server of the benchmark's own on a free port (no persistence); its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"),
            *("--dir", str(workdir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://{HOST}:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


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


def _documented(status: int, body: bytes) -> bool:
    """A 503 whose problem title is one the docs promise for a fault."""
    if status != 503:
        return False
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(problem, dict) and problem.get("title") in DOCUMENTED_503_TITLES


async def _drive(plan: Plan, started_flag: EventFlag) -> None:
    import httpx

    # (start s from the load's start, endpoint, status, s, documented 503: 1.0 or 0.0)
    rows: list[tuple[float, int, int, float, float]] = []
    failures: list[str] = []
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}
    started = deadline = 0.0

    async def worker(client: httpx.AsyncClient, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            kind, method, path, body = _requests(plan, rng)
            begun = time.monotonic()
            documented = False
            try:
                answer = await client.request(method, path, content=body, headers=headers)
                status = answer.status_code
                documented = _documented(status, answer.content)
            except httpx.HTTPError as problem:
                status = 0  # transport error: no answer
                failures.append(f"{type(problem).__name__}: {problem}"[:200])
            elapsed = time.monotonic() - begun
            rows.append((begun - started, kind, status, elapsed, float(documented)))

    limits = httpx.Limits(max_connections=plan.concurrency)
    async with httpx.AsyncClient(base_url=plan.base, limits=limits, timeout=30) as client:
        # One clock for both processes (CLOCK_MONOTONIC): the parent takes its start when
        # this flag is set, so fault times and request times line up.
        started = time.monotonic()
        deadline = started + plan.seconds
        started_flag.set()
        await asyncio.gather(*(worker(client, seed) for seed in range(plan.concurrency)))
    np.save(plan.out, np.array(rows, dtype=np.float64))
    plan.out.with_suffix(".errors.json").write_bytes(orjson.dumps(failures))


def _load_process(plan: Plan, started_flag: EventFlag) -> None:
    asyncio.run(_drive(plan, started_flag))


def _percentile_ms(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q) * 1000) if len(values) else float("nan")


@dataclass(frozen=True)
class Fault:
    name: str
    started: float  # s from the load's start
    finished: float
    note: str
    consistent: bool | None = None  # killed publish: the API's run is latest.json's


@dataclass(frozen=True)
class World:
    """What the faults act on."""

    base: str
    paths: Any  # serving.settings.ServingPaths
    redis_url: str
    handoff: dict[str, str]  # the API's environment (settings and paths)
    cli_env: dict[str, str]  # the environment of `propensity score` for the same data


def publish_then_die(as_of: str, kill_at: str) -> None:
    """In a child process: the batch job of the handoff's settings and paths, SIGKILLed by
    itself (no ``finally``, no flush) once the ``kill_at`` step of its publish is done."""
    from serving.api.server import HANDOFF_VARIABLE
    from serving.batch.job import score_visitors
    from serving.settings import ServingPaths, ServingSettings

    raw = orjson.loads(os.environ[HANDOFF_VARIABLE])
    given = raw["paths"]
    paths = ServingPaths(
        Path(given["lake_dir"]),
        Path(given["outputs_dir"]),
        Path(given["serving_dir"]),
        given["tracking_uri"],
    )

    def step(name: str) -> None:
        if name == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    settings = ServingSettings.model_validate(raw["settings"])
    score_visitors(settings, paths, as_of=datetime.fromisoformat(as_of), on_step=step)
    sys.exit(3)  # the step was never reached


def _propensity_score(world: World, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "propensity"), "score", "--json", *extra],
        env=world.cli_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _corrupt_cache(world: World, kill_at: str) -> tuple[str, bool | None]:
    import httpx

    cache = world.paths.model_cache_dir
    objects = list(cache.rglob("*.raw.o"))
    for library in objects:
        library.write_bytes(os.urandom(max(1, library.stat().st_size)))
    specs = list((cache / "artifacts").rglob("scoring.json"))
    for spec in specs:
        spec.write_text("{\n")  # "Expecting value: line 2 column 1"
    answer = httpx.post(
        world.base + "/v1/admin/reload", headers={"X-API-Key": API_KEY}, timeout=300
    )
    return (
        f"{len(objects)} compiled objects and {len(specs)} scoring.json damaged; "
        f"reload {answer.status_code}"
    ), None


def _empty_store(world: World, kill_at: str) -> tuple[str, bool | None]:
    import redis

    redis.Redis.from_url(world.redis_url).flushall()
    flushed = time.monotonic()
    again = _propensity_score(world)
    if again.returncode != 0:
        return f"FLUSHALL; propensity score exited {again.returncode}: {again.stderr[-300:]}", None
    run_id = orjson.loads(again.stdout)["run_id"]
    return (
        f"FLUSHALL; propensity score published {run_id} after {time.monotonic() - flushed:.1f} s"
    ), None


def _killed_publish(world: World, kill_at: str) -> tuple[str, bool | None]:
    import httpx

    from serving.batch.job import default_as_of
    from serving.batch.outputs import published_run_id

    # A new as_of (whole seconds, as the CLI takes it), so that the run is a new one.
    as_of = (default_as_of(world.paths.lake_dir) + timedelta(hours=1)).replace(microsecond=0)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from benchmarks.reliability import publish_then_die; "
            "publish_then_die(*sys.argv[1:])",
            as_of.isoformat(),
            kill_at,
        ],
        env={**os.environ, **world.handoff},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if killed.returncode != -signal.SIGKILL:
        return (
            f"the publish was not killed (exit {killed.returncode}): {killed.stderr[-300:]}",
            False,
        )
    again = _propensity_score(world, "--as-of", as_of.replace(tzinfo=None).isoformat())
    if again.returncode != 0:
        return (
            f"killed at {kill_at}; re-run exited {again.returncode}: {again.stderr[-300:]}",
            False,
        )
    rerun = orjson.loads(again.stdout)
    model = httpx.get(world.base + "/v1/model", headers={"X-API-Key": API_KEY}, timeout=30).json()
    serving_run = (model.get("last_run") or {}).get("run_id")
    pointed = published_run_id(world.paths.scoring_dir)
    consistent = serving_run == pointed == rerun["run_id"]
    return (
        f"killed at {kill_at}; re-run {rerun['run_id']} (skipped: {rerun.get('skipped')}); "
        f"API serves {serving_run}, latest.json names {pointed}"
    ), consistent


ACTIONS: dict[str, Callable[[World, str], tuple[str, bool | None]]] = {
    "cache": _corrupt_cache,
    "empty_store": _empty_store,
    "killed_publish": _killed_publish,
}


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
        world = World(base, setup["paths"], setup["redis_url"], env, setup["cli_env"])
        api = psutil.Process(_listening_pid(port))
        visitors = setup["visitors"][:2000]
        plan = Plan(base, args.seconds, args.concurrency, visitors, logs / "rows.npy")
        context = multiprocessing.get_context("spawn")
        started_flag = context.Event()
        load = context.Process(target=_load_process, args=(plan, started_flag))
        load.start()
        if not started_flag.wait(timeout=120):
            raise RuntimeError("the load generator did not start")
        started = time.monotonic()
        span = LAST_RELOAD_SHARE - FIRST_RELOAD_SHARE
        moments = [
            FIRST_RELOAD_SHARE + span * i / max(1, args.reloads - 1) for i in range(args.reloads)
        ]
        faults_due = list(FAULTS)
        rss: list[tuple[float, int]] = []
        reloads: list[tuple[float, int, str]] = []
        faults: list[Fault] = []
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
            elif not moments and faults_due and elapsed >= faults_due[0][1]:
                name, _ = faults_due.pop(0)
                begun = time.monotonic() - started
                note, consistent = ACTIONS[name](world, args.kill_at)
                fault = Fault(name, begun, time.monotonic() - started, note, consistent)
                faults.append(fault)
                print(f"fault {name} at {begun / args.seconds:.0%} of the run: {note}")
            time.sleep(0.5)
        load.join()
    rows = np.load(plan.out)
    failures = orjson.loads(plan.out.with_suffix(".errors.json").read_bytes())
    return {"rows": rows, "rss": rss, "reloads": reloads, "failures": failures, "faults": faults}


def _listening_pid(port: int) -> int:
    """The process listening on ``port`` (the uvicorn server)."""
    import psutil

    for connection in psutil.net_connections("tcp"):
        listening = connection.status == "LISTEN" and connection.pid is not None
        if listening and connection.laddr and connection.laddr.port == port:
            return int(connection.pid)
    raise RuntimeError(f"no process listens on port {port}")


def _fault_fields(rows: np.ndarray, faults: list[Fault]) -> dict[str, str]:
    """Per fault, over the requests answered from its start to the next fault's start (or
    the end; a request sent before a fault may be answered after it): its 503s, how long
    they lasted (first 503 answered to last) and any other non-2xx."""
    fields: dict[str, str] = {}
    status, answered = rows[:, 2], rows[:, 0] + rows[:, 3]
    print(f"{'fault':<16}{'requests':>10}{'503':>7}{'window s':>10}{'other non-2xx':>15}  what")
    ends = [f.started for f in faults[1:]] + [float("inf")]
    for fault, end in zip(faults, ends, strict=True):
        inside = (answered >= fault.started) & (answered < end)
        unavailable = inside & (status == 503)
        other = inside & ~unavailable & ((status < 200) | (status >= 300))
        when = answered[unavailable]
        window = float(when.max() - when.min()) if len(when) else 0.0
        fields[f"{fault.name}_503"] = str(int(unavailable.sum()))
        fields[f"{fault.name}_window_s"] = f"{window:.2f}"
        fields[f"{fault.name}_other_non_2xx"] = str(int(other.sum()))
        print(
            f"{fault.name:<16}{int(inside.sum()):>10,}{int(unavailable.sum()):>7}{window:>10.2f}"
            f"{int(other.sum()):>15}  {fault.note}"
        )
        if fault.consistent is not None:
            fields[f"{fault.name}_consistent"] = str(fault.consistent).lower()
    return fields


def report(result: dict[str, Any], seconds: float) -> str:
    rows, reloads, faults = result["rows"], result["reloads"], result["faults"]
    share = rows[:, 0] / seconds
    status = rows[:, 2]
    documented = rows[:, 4] > 0
    first_reload = reloads[0][0] if reloads else 1.0
    first_fault = faults[0].started / seconds if faults else 1.0
    before = (share >= WARMUP_SHARE) & (share < first_reload)
    during = (share >= first_reload) & (share < first_fault)
    under_faults = share >= first_fault
    failed = (status >= 300) | ((status < 200) & (status > 0))
    non_2xx = int((failed & ~documented).sum())
    errors = int((status == 0).sum())
    print(f"requests {len(rows):,} in {seconds:.0f} s ({len(rows) / seconds:,.0f}/s)")
    print(f"{'endpoint':<9}{'phase':>8}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    fields: dict[str, str] = {}
    for kind, name in enumerate(ENDPOINTS):
        phases = (("before", before), ("during", during), ("faults", under_faults))
        for phase, mask in phases:
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
    fault_fields = _fault_fields(rows, faults)
    print(
        f"non-2xx outside the documented 503 windows: {non_2xx}; documented 503s "
        f"{int(documented.sum())} (titles {sorted(DOCUMENTED_503_TITLES)})"
    )
    return (
        f"RESULT requests={len(rows)} non_2xx={non_2xx} errors={errors} reloads={ok_reloads} "
        + " ".join(f"{k}={v}" for k, v in fields.items())
        + f" rss_growth_pct={from_warm:.1f} rss_growth_from_first_reload_pct={growth:.1f}"
        + f" faults={len(faults)} documented_503={int(documented.sum())} "
        + " ".join(f"{k}={v}" for k, v in fault_fields.items())
    )


def main(argv: list[str] | None = None) -> None:
    from serving.batch.publish import STEPS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="90 s, 2 reloads: a smoke test")
    parser.add_argument("--seconds", type=float, default=None, help="load duration (180)")
    parser.add_argument("--reloads", type=int, default=None, help="champion changes (6)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--visitors", type=int, default=3000, help="simulated visitors")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument(
        "--kill-at", choices=STEPS, default="store-switched", help="publish step killed after"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="emptied first, kept after (for the logs)"
    )
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (90.0 if args.quick else 180.0)
    args.reloads = args.reloads or (2 if args.quick else 6)
    if args.workdir is not None:
        shutil.rmtree(args.workdir, ignore_errors=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="propensity-bench-reliability-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        from benchmarks.api import prepare

        with redis_server(workdir) as redis_url:
            setup = prepare(workdir, args.visitors, args.trees, store="redis", redis_url=redis_url)
            register_versions(
                str(setup["paths"].tracking_uri),
                workdir / "artifacts",
                args.trees,
                list(range(1, 1 + args.reloads)),
            )
            setup["redis_url"] = redis_url
            setup["cli_env"] = {
                **os.environ,
                "PROPENSITY_DATA_DIR": str(workdir / "data"),
                "MLFLOW_TRACKING_URI": str(setup["paths"].tracking_uri),
                "PROPENSITY_SERVING__STORE": "redis",
                "PROPENSITY_SERVING__REDIS_URL": redis_url,
                "PROPENSITY_LOG_LEVEL": "WARNING",
            }
            print(orjson.dumps({"seconds": args.seconds, "reloads": args.reloads}).decode())
            print(report(run(setup, args, logs), args.seconds))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    main()
