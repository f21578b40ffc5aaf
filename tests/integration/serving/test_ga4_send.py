"""``--send`` against a local HTTP server that validates each body as GA4's validation
endpoint (``/debug/mp/collect``) would: nothing leaves the machine."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import polars as pl
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from features.ingest.contacts import ingest_contacts_file
from propensity.cli import app
from propensity.settings import Settings
from serving.activation.send import SendRefused, send_bodies
from serving.activation.settings import ActivationSettings
from tests.integration.propensity.test_export_cli import _publish_run

RESERVED = ("google_", "ga_", "firebase_")


def ga4_objections(raw: bytes) -> list[str]:
    """GA4's documented Measurement Protocol limits, written out independently of the code."""
    if len(raw) >= 130_000:
        return ["body too large"]
    body: dict[str, Any] = json.loads(raw)
    found = [] if body.get("client_id") else ["client_id missing"]
    events = body.get("events", [])
    if not 1 <= len(events) <= 25:
        found.append("1..25 events")
    for event in events:
        if len(event.get("name", "")) > 40 or event.get("name", "").startswith(RESERVED):
            found.append("event name")
    properties = body.get("user_properties", {})
    if len(properties) > 25:
        found.append("over 25 user properties")
    for name, value in properties.items():
        if len(name) > 24 or name.startswith(RESERVED) or len(str(value["value"])) > 36:
            found.append(f"user property {name}")
    return found


class Collector:
    def __init__(self, transient_failures: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.requests = 0
        self.transient_failures = transient_failures
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                collector.requests += 1
                query = parse_qs(urlparse(self.path).query)
                raw = self.rfile.read(int(self.headers["content-length"]))
                if collector.transient_failures > 0:
                    collector.transient_failures -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                objections = ga4_objections(raw)
                if query.get("measurement_id") != ["G-TEST"] or query.get("api_secret") != ["s"]:
                    objections.append("measurement_id/api_secret")
                if not objections:
                    collector.bodies.append(json.loads(raw))
                answer = orjson.dumps({"validationMessages": objections})
                self.send_response(200)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/debug/mp/collect"


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector(transient_failures=2)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _settings(url: str) -> ActivationSettings:
    return ActivationSettings(
        ga4_collect_url=url,
        ga4_measurement_id="G-TEST",
        ga4_api_secret=SecretStr("s"),
        send_backoff_seconds=0.01,
    )


def _body(client_id: str, **properties: str) -> bytes:
    return orjson.dumps(
        {
            "client_id": client_id,
            "user_properties": {k: {"value": v} for k, v in properties.items()},
            "events": [{"name": "propensity_audience", "params": {}}],
        }
    )


def test_retries_transient_failures_and_sends_each_body_once(
    collector: Collector, tmp_path: Path
) -> None:
    bodies = [_body("1.1"), _body("2.2")]
    ledger = tmp_path / "run" / "ga4_sent.ledger"
    first = send_bodies(bodies, ledger, _settings(collector.url))
    assert first.to_dict() == {"sent": 2, "already_sent": 0, "refused": 0, "gave_up": 0}
    assert collector.requests == 4  # two 503s retried
    again = send_bodies([*bodies, _body("3.3")], ledger, _settings(collector.url))
    assert (again.sent, again.already_sent) == (1, 2)
    assert [b["client_id"] for b in collector.bodies] == ["1.1", "2.2", "3.3"]


def test_a_body_the_validator_refuses_is_counted_not_retried_nor_ledgered(
    collector: Collector, tmp_path: Path
) -> None:
    collector.transient_failures = 0
    bad = _body("1.1", ga_reserved="x")
    summary = send_bodies([bad], tmp_path / "ledger", _settings(collector.url))
    assert (summary.refused, summary.sent, collector.requests) == (1, 0, 1)
    assert (tmp_path / "ledger").read_text() == ""


def test_gives_up_after_the_configured_attempts(collector: Collector, tmp_path: Path) -> None:
    collector.transient_failures = 100
    settings = _settings(collector.url).model_copy(update={"send_attempts": 3})
    summary = send_bodies([_body("1.1")], tmp_path / "ledger", settings)
    assert (summary.gave_up, collector.requests) == (1, 3)


def test_sending_without_credentials_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SendRefused):
        send_bodies([_body("1.1")], tmp_path / "l", ActivationSettings())


def test_export_send_twice_posts_the_run_once(
    collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROPENSITY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PROPENSITY_ACTIVATION__GA4_COLLECT_URL", collector.url)
    monkeypatch.setenv("PROPENSITY_ACTIVATION__GA4_MEASUREMENT_ID", "G-TEST")
    monkeypatch.setenv("PROPENSITY_ACTIVATION__GA4_API_SECRET", "s")
    monkeypatch.setenv("PROPENSITY_ACTIVATION__SEND_BACKOFF_SECONDS", "0.01")
    settings = Settings()
    _publish_run(settings)
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "visitor_id,email_status,ads_consent,updated_at,ga_client_id\n"
        "v1,subscribed,granted,2025-01-01T00:00:00Z,111.222\n"
        "v2,subscribed,granted,2025-01-01T00:00:00Z,333.444\n"
    )
    ingest_contacts_file(
        contacts, lake_dir=settings.lake_dir, quarantine_dir=tmp_path / "q", ingest_id="c"
    )
    args = ["export", "--to", "ga4", "--out", str(tmp_path / "out"), "--send", "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["delivery"]["sent"] == 2
    second = CliRunner().invoke(app, args)
    assert json.loads(second.stdout)["delivery"] == {
        "sent": 0,
        "already_sent": 2,
        "refused": 0,
        "gave_up": 0,
    }
    assert sorted(b["client_id"] for b in collector.bodies) == ["111.222", "333.444"]
    assert pl.read_parquet(settings.lake_dir / "contacts" / "identifiers.parquet").height == 2
