"""API keys (refused without one, compared in constant time, never echoed or logged) and
personal data (emails never reach a log, the lake or a quarantine file)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

import serving.api.state
from features.ingest.contacts import ingest_contacts_file
from features.ingest.identifiers import IDENTIFIERS_FILE, read_identifiers
from features.ingest.mapping import builtin_mapping
from features.ingest.pipeline import ingest_file
from features.ingest.validate import ValidationLimits
from serving.api.app import create_app
from tests.integration.serving.world import World, settings
from tests.reliability.conftest import event

SECRET = "s3cr3t-key-7f2c9a41d0e8"
OTHER = "second-key-91b3"
WRONG = "guess-5e7d0c11aa"
EMAILS = ("alice.martin@example.com", "bob+promo@example.org", "carol@example.net")
WRITES = [
    ("POST", "/v1/events", {"visitor_id": "v-sec", "events": [event()]}),
    ("POST", "/v1/admin/reload", None),
]


@pytest.fixture
def keyed(scored: tuple[World, str, list[str]]) -> Iterator[TestClient]:
    shared, name, _ = scored
    app = create_app(settings(api_keys=[SECRET, OTHER]), shared.paths(name))
    with TestClient(app) as live:
        yield live


#: The test's own HTTP client logs the URLs it requests: not the server's log.
CLIENT_LOGGERS = ("httpx", "httpcore")


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.args!r}"
        for r in caplog.records
        if not r.name.startswith(CLIENT_LOGGERS)
    )


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_writes_refuse_missing_and_wrong_keys_without_echoing_them(
    keyed: TestClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: object,
) -> None:
    caplog.set_level(logging.DEBUG)
    for headers in ({}, {"X-API-Key": WRONG}, {"X-API-Key": SECRET[:-1]}, {"X-API-Key": ""}):
        answer = keyed.request(method, path, json=body, headers=headers)
        assert answer.status_code in (401, 403), (headers, answer.text)
        assert answer.json()["detail"]
        shown = answer.text + str(answer.headers)
        assert WRONG not in shown and SECRET not in shown and SECRET[:-1] not in shown
    for key in (SECRET, OTHER):
        answer = keyed.request(method, path, json=body, headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        assert key not in answer.text
    logged = _everything_logged(caplog)
    for key in (SECRET, OTHER, WRONG):
        assert key not in logged


def test_keys_never_appear_in_settings_output() -> None:
    configured = settings(api_keys=[SECRET])
    for shown in (str(configured), repr(configured), configured.model_dump_json()):
        assert SECRET not in shown


def test_every_key_is_compared_in_constant_time(
    keyed: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hmac.compare_digest`` against every configured key, with no early exit: the time
    taken does not tell which key, or which prefix, matched."""
    compared: list[tuple[bytes, bytes]] = []
    real = serving.api.state.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(serving.api.state.hmac, "compare_digest", spy)
    for presented, allowed in ((SECRET, True), (OTHER, True), (WRONG, False)):
        compared.clear()
        answer = keyed.post("/v1/admin/reload", headers={"X-API-Key": presented})
        assert (answer.status_code == 200) is allowed
        assert sorted(b for _, b in compared) == sorted([SECRET.encode(), OTHER.encode()])


def test_emails_in_a_contacts_file_reach_no_log_lake_or_quarantine(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Addresses go to the identifiers store only (accepted rows): never to the contacts
    table, the quarantine, the lake or a log."""
    caplog.set_level(logging.DEBUG)
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "visitor_id,email,email_status,ads_consent,updated_at\n"
        f"v1,{EMAILS[0]},subscribed,granted,2025-03-01T00:00:00Z\n"
        f"v2,{EMAILS[1]},sometimes,granted,2025-03-01T00:00:00Z\n"  # quarantined
        f",{EMAILS[2]},subscribed,denied,2025-03-01T00:00:00Z\n"  # quarantined
    )
    report = ingest_contacts_file(
        contacts, lake_dir=tmp_path / "lake", quarantine_dir=tmp_path / "q", ingest_id="c"
    )
    assert report.accepted == 1 and report.quarantined_total == 2
    store = tmp_path / "lake" / IDENTIFIERS_FILE
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in (contacts, store)]
    assert written, "nothing was written?"
    for path in written:
        content = path.read_bytes()
        for email in EMAILS:
            assert email.encode() not in content, (path, email)
    assert read_identifiers(tmp_path / "lake").get_column("email").to_list() == [EMAILS[0]]
    assert (
        "email" not in pl.read_parquet(tmp_path / "lake" / "contacts" / "contacts.parquet").columns
    )
    logged = _everything_logged(caplog) + report.to_dict().__repr__()
    for email in EMAILS:
        assert email not in logged


def test_emails_in_broken_event_lines_reach_no_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, limits: ValidationLimits
) -> None:
    """A broken line quoted in a parser's message must not reach the log."""
    caplog.set_level(logging.DEBUG)
    events = tmp_path / "events.csv"
    events.write_bytes(
        b"visitor_id,event_time,event_name,item_id,item_category,price,quantity,revenue,"
        b"transaction_id,session_id,user_id\n"
        b"v1,2025-03-01T10:00:00Z,view_item,i1,c1,1.0,,,,s1,\n"
        + f"v2,2025-03-01T10:00:00Z,view_item,i1,c\xe9,1.0,,,,s1,{EMAILS[0]}\n".encode("latin-1")
        + f"v3,2025-03-01T10:00:00Z,view_item,{EMAILS[1]}\n".encode()
    )
    report = ingest_file(
        events,
        mapping=builtin_mapping("canonical"),
        lake_dir=tmp_path / "lake",
        quarantine_dir=tmp_path / "q",
        limits=limits,
        batch_rows=100,
        ingest_id="e",
    )
    assert report.accepted == 1 and report.quarantined_total == 2
    logged = _everything_logged(caplog)
    for email in EMAILS:
        assert email not in logged


def test_api_flows_with_emails_in_the_input_log_none(
    keyed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = {"X-API-Key": SECRET}
    flows = [
        ("/v1/events", {"visitor_id": "v-mail", "events": [event(user_id=EMAILS[0])]}),
        ("/v1/events", {"visitor_id": "v-mail", "events": [event(price=EMAILS[1])]}),
        ("/v1/events", {"visitor_id": EMAILS[2], "events": [event()], "colour": EMAILS[0]}),
        ("/v1/score", {"visitor_id": "v-mail", "events": [event(item_id=EMAILS[0])]}),
        ("/v1/score", {"visitor_id": "v-mail", "features": {EMAILS[1]: 1.0}}),
    ]
    for path, body in flows:
        assert keyed.post(path, json=body, headers=key).status_code < 500
    keyed.get(f"/v1/visitors/{EMAILS[1]}")
    logged = _everything_logged(caplog)
    for email in EMAILS:
        assert email not in logged
