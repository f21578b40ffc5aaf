"""Model faults: the registry unreachable or the alias missing at startup, and a corrupt or
incompatible version promoted. The API stays up, says why it is not ready, and recovers by
itself (alias poll); a bad version is refused and the old one kept, in the log and metrics."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from serving.api.app import create_app
from tests.integration.serving.redis_server import free_port
from tests.integration.serving.world import World, register_tiny_model, settings
from tests.reliability.conftest import KEY, event

READY_WITHIN = 60.0


def _wait_ready(client: TestClient, within: float = READY_WITHIN) -> None:
    deadline = time.monotonic() + within
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.2)


def _start_tracking_server(shared: World, uri: str, log: Path) -> subprocess.Popen[bytes]:
    port = urlparse(uri).port
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            shared.tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers too are stopped with the group
    )


def _stop(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def test_registry_unreachable_at_startup_then_ready_by_itself(
    shared: World, scored: tuple[World, str, list[str]], tmp_path: Path
) -> None:
    name = "fault-unreachable"
    register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=5)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there yet
    _, run, visitors = scored
    paths = shared.paths(run)
    paths = type(paths)(paths.lake_dir, paths.outputs_dir, paths.serving_dir, uri)
    # No alias polling: the retry while no model is loaded (model_retry_seconds) suffices.
    polled = settings(model_uri=f"models:/{name}@champion", model_retry_seconds=0.5)
    started = time.monotonic()
    with TestClient(create_app(polled, paths)) as live:
        assert time.monotonic() - started < 30, "startup waited too long on the registry"
        assert live.get("/healthz").status_code == 200
        ready = live.get("/readyz")
        assert ready.status_code == 503
        assert "registry did not answer" in ready.json()["reason"]
        scoring = live.post("/v1/score", json={"visitor_id": "v", "events": [event()]})
        assert scoring.status_code == 503
        assert scoring.json()["title"] == "Model not loaded"
        assert "registry did not answer" in scoring.json()["detail"]
        posting = live.post(
            "/v1/events", json={"visitor_id": "v", "events": [event()]}, headers=KEY
        )
        assert posting.status_code == 503
        lookup = live.get(f"/v1/visitors/{visitors[0]}")
        assert lookup.status_code == 503 and lookup.json()["title"] == "Model not loaded"
        assert "registry did not answer" in lookup.json()["detail"]
        server = _start_tracking_server(shared, uri, tmp_path / "mlflow-server.log")
        try:
            _wait_ready(live, within=120)
            assert live.get("/v1/model").json()["version"] == "1"
            assert live.get(f"/v1/visitors/{visitors[0]}").status_code == 200
            assert (
                live.post("/v1/score", json={"visitor_id": "v", "events": [event()]}).status_code
                == 200
            )
        finally:
            _stop(server)


def test_stored_scores_served_without_model_when_configured(
    shared: World, scored: tuple[World, str, list[str]]
) -> None:
    _, run, visitors = scored
    opened = settings(model_uri="models:/fault-never-registered@champion", model_retry_seconds=None)
    with TestClient(
        create_app(opened.model_copy(update={"lookups_without_model": True}), shared.paths(run))
    ) as live:
        assert live.get("/readyz").status_code == 503
        assert live.get(f"/v1/visitors/{visitors[0]}").status_code == 200
        assert (
            live.post("/v1/score", json={"visitor_id": "v", "events": [event()]}).status_code == 503
        )


@pytest.mark.parametrize(
    "recovery",
    [
        {"model_retry_seconds": 0.2},
        {"model_retry_seconds": None, "alias_poll_seconds": 0.2},
    ],
    ids=["retry", "alias-poll"],
)
def test_alias_missing_at_startup_then_ready_by_itself(
    shared: World, recovery: dict[str, float | None]
) -> None:
    name = f"fault-no-alias-{len(recovery)}"
    paths = shared.paths(name)
    polled = settings(model_uri=f"models:/{name}@champion", **recovery)
    with TestClient(create_app(polled, paths)) as live:
        ready = live.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert f"no registered model {name!r} with alias @champion" in ready.json()["reason"]
        scoring = live.post("/v1/score", json={"visitor_id": "v", "events": [event()]})
        assert scoring.status_code == 503 and "train and promote" in scoring.json()["detail"]
        register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=6)
        _wait_ready(live)
        assert live.get("/v1/model").json()["version"] == "1"


def _artifact_dir(shared: World, name: str, version: str) -> Path:
    uri = MlflowClient(shared.tracking_uri, registry_uri=shared.tracking_uri)
    return Path(urlparse(uri.get_model_version_download_uri(name, version)).path)


def _reload_failures(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('propensity_model_reloads_total{outcome="failed"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("fault", ["corrupt_booster", "missing_spec", "unknown_feature"])
def test_a_bad_version_is_refused_and_the_old_one_kept(
    shared: World, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"fault-{fault.replace('_', '-')}"
    register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=7)
    app = create_app(settings(model_uri=f"models:/{name}@champion"), shared.paths(name))
    with TestClient(app) as live:
        assert live.get("/v1/model").json()["version"] == "1"
        register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=8)
        spec_file = next(_artifact_dir(shared, name, "2").rglob("scoring.json"))
        if fault == "corrupt_booster":
            booster = spec_file.parent / json.loads(spec_file.read_text())["booster_file"]
            booster.write_bytes(b"\x00\xffnot a model" * 100)
        elif fault == "missing_spec":
            shutil.rmtree(spec_file.parent)
        else:
            spec = json.loads(spec_file.read_text())
            spec["feature_columns"] = [*spec["feature_columns"][:-1], "n_rockets_launched"]
            spec_file.write_text(json.dumps(spec))
        failures_before = _reload_failures(live)
        with caplog.at_level(logging.ERROR, logger="serving.api.state"):
            refused = live.post("/v1/admin/reload", headers=KEY)
        assert refused.status_code == 503, refused.text
        detail = refused.json()["detail"]
        assert "still serving version 1" in detail
        # The answer names the problem, never the server's file system: the detail is logged.
        assert "file:" not in detail and str(shared.root) not in detail, detail
        assert re.search(r"(?:^|[\s'\"(])/\w+/", detail) is None, detail
        assert f"{name} version 2" in detail, detail
        assert live.get("/v1/model").json()["version"] == "1"
        assert live.get("/readyz").status_code == 200
        scoring = live.post("/v1/score", json={"visitor_id": "v", "events": [event()]})
        assert scoring.status_code == 200 and scoring.json()["model_version"] == "1"
        assert _reload_failures(live) == failures_before + 1
        assert 'propensity_model_info{version="1"} 1.0' in live.get("/metrics").text
        assert any(
            "reload refused, still serving version 1" in r.getMessage() for r in caplog.records
        )
