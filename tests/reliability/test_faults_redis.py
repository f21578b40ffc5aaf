"""The Redis score store stalls (SIGSTOP) or stops mid-run, and comes back: lookups and
writes fail fast with a 503 naming the store, never hang or 500, and the same API process
recovers once Redis answers again (a real redis-server on a fixed free port, with an
append-only file so that its data survives the restart)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.batch.job import score_visitors
from serving.settings import ServingSettings
from tests.integration.serving.redis_server import free_port
from tests.integration.serving.world import World, settings
from tests.reliability.conftest import KEY, event

TIMEOUT = 0.5  # seconds, redis_timeout_seconds of the app under test
FAST = 2 * (1 + 1) * TIMEOUT + 1.0  # (retries + 1) tries, connect + read, plus slack


class RedisProcess:
    """One redis-server that can be paused, stopped and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "always"),
                *("--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                assert time.monotonic() < deadline and self.process.poll() is None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _settings(url: str) -> ServingSettings:
    return settings(store="redis", redis_url=url, redis_timeout_seconds=TIMEOUT)


def _timed(call: object) -> tuple[int, float, dict[str, object]]:
    started = time.monotonic()
    answer = call()  # type: ignore[operator]
    return answer.status_code, time.monotonic() - started, answer.json()


@pytest.mark.xdist_group("redis-faults")
def test_stalled_then_stopped_redis_fails_fast_and_recovers(
    shared: World, redis_process: RedisProcess
) -> None:
    redis_settings = _settings(redis_process.url)
    paths = shared.paths("fault-redis")
    summary = score_visitors(redis_settings, paths)
    import polars as pl

    visitor = pl.read_parquet(summary.files["scores"]).get_column("visitor_id")[0]
    with TestClient(create_app(redis_settings, paths), raise_server_exceptions=False) as live:
        lookup = lambda: live.get(f"/v1/visitors/{visitor}")  # noqa: E731
        post = lambda: live.post(  # noqa: E731
            "/v1/events", json={"visitor_id": visitor, "events": [event()]}, headers=KEY
        )
        assert lookup().status_code == 200

        redis_process.pause()  # stalled: accepts connections, never answers
        for call in (lookup, post):
            status, seconds, problem = _timed(call)
            assert status == 503 and problem["title"] == "Store unavailable", problem
            assert seconds < FAST, f"took {seconds:.1f} s: not failing fast"
        status, seconds, _ = _timed(lambda: live.get("/readyz"))
        assert status == 503 and seconds < FAST
        redis_process.resume()
        assert lookup().status_code == 200

        redis_process.stop()  # gone: connections refused
        for call in (lookup, post):
            status, seconds, problem = _timed(call)
            assert status == 503 and "score store" in str(problem["detail"]), problem
            assert seconds < FAST
        assert live.get("/readyz").json()["store"] is False

        redis_process.start()  # same port, same data (append-only file), same API process
        assert live.get("/readyz").status_code == 200
        assert lookup().json()["visitor_id"] == visitor
        assert post().status_code == 200
        assert lookup().json()["source"] == "real_time"


@pytest.mark.xdist_group("redis-faults")
def test_redis_down_at_startup_then_up(shared: World, tmp_path: Path) -> None:
    server = RedisProcess(tmp_path)  # not started yet
    redis_settings = _settings(server.url)
    with TestClient(create_app(redis_settings, shared.paths("fault-redis-late"))) as live:
        ready = live.get("/readyz")
        assert ready.status_code == 503 and "Redis" in ready.json()["reason"]
        status, seconds, problem = _timed(lambda: live.get("/v1/visitors/anyone"))
        assert status == 503 and seconds < FAST and problem["title"] == "Store unavailable"
        server.start()
        try:
            assert live.get("/readyz").status_code == 200
            posted = live.post(
                "/v1/events", json={"visitor_id": "late", "events": [event()]}, headers=KEY
            )
            assert posted.status_code == 200, posted.text
            assert live.get("/v1/visitors/late").status_code == 200
        finally:
            server.stop()
