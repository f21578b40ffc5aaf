"""The probes of issue 23 against the real app: ids in the URL held to the bodies' rule, one
API-key rule on every route, JSON routes that take JSON only. Each was answered otherwise
before (a 404 echoing the id, the first or the last key, a 422 about dictionaries)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from tests.integration.serving.world import API_KEY, World, settings
from tests.reliability.conftest import KEY, event

CLOSED_READS = settings(read_requires_key=True)


@pytest.fixture(scope="module")
def live(scored: tuple[World, str, list[str]]) -> Iterator[TestClient]:
    shared, name, _ = scored
    with TestClient(create_app(CLOSED_READS, shared.paths(name))) as client:
        yield client


@pytest.mark.parametrize(
    "raw_id",
    ["x" * 5_000, "a%00b", "a%1Fb", "a%E2%80%AEb", "%ED%A0%80", "%FF", "ok%FFok"],
    ids=[
        "5000-chars",
        "nul",
        "control",
        "bidi-override",
        "lone-surrogate",
        "invalid-utf8",
        "invalid-utf8-inside",
    ],
)
def test_path_ids_follow_the_body_rule(live: TestClient, raw_id: str) -> None:
    answer = live.get(f"/v1/visitors/{raw_id}", headers=KEY)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["errors"][0]["location"] == "path.visitor_id"
    assert "xxxxxxxxxx" * 10 not in answer.text  # never echoed in full


def test_an_unknown_id_is_quoted_short_and_escaped(live: TestClient) -> None:
    long_id = "é" * 200 + "\u00ad"  # valid, unknown, and longer than any quote
    answer = live.get(f"/v1/visitors/{long_id}", headers=KEY)
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert long_id not in detail and "é" * 40 in detail and "é" * 41 not in detail
    assert "(201 characters)" in detail


def test_a_real_visitor_with_a_unicode_replacement_character_is_no_error(
    live: TestClient,
) -> None:
    """U+FFFD sent as its UTF-8 bytes is valid: only bytes that are not UTF-8 are refused."""
    assert live.get("/v1/visitors/a%EF%BF%BDb", headers=KEY).status_code == 404


ROUTES = [
    ("GET", "/v1/visitors/v-1", None),
    ("GET", "/v1/model", None),
    ("POST", "/v1/score", {"visitor_id": "v-1", "events": [event()]}),
    ("POST", "/v1/events", {"visitor_id": "v-1", "events": [event()]}),
    ("POST", "/v1/admin/reload", None),
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("order", ["valid-first", "valid-last"])
def test_several_api_keys_are_400_on_every_route(
    live: TestClient, method: str, path: str, body: object, order: str
) -> None:
    keys = [API_KEY, "wrong"] if order == "valid-first" else ["wrong", API_KEY]
    headers = [("x-api-key", k) for k in keys]
    answer = live.request(method, path, json=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["title"] == "Several API keys"


@pytest.mark.parametrize("path", ["/v1/score", "/v1/events"])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"visitor_id": "v-1"}'),
        ("application/xml", b"<visitor_id>v-1</visitor_id>"),
        ("application/x-www-form-urlencoded", b"visitor_id=v-1"),
        (None, b'{"visitor_id": "v-1"}'),
    ],
    ids=["text", "xml", "form", "no-content-type"],
)
def test_json_routes_refuse_other_media_types_with_415(
    live: TestClient, path: str, content_type: str | None, body: bytes
) -> None:
    headers = dict(KEY) if content_type is None else {**KEY, "content-type": content_type}
    answer = live.post(path, content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["detail"]


def test_json_with_a_charset_or_a_json_suffix_is_json(live: TestClient) -> None:
    body = b'{"visitor_id": "v-1", "events": []}'  # schema-invalid: proves it was read
    for kind in ("application/json; charset=utf-8", "application/merge-patch+json"):
        answer = live.post("/v1/events", content=body, headers={**KEY, "content-type": kind})
        assert answer.status_code == 422, (kind, answer.text)


@pytest.mark.parametrize(
    "blank", [" ", "%C2%A0", "%E3%80%80"], ids=["space", "nbsp", "ideographic"]
)
def test_a_blank_id_is_refused_by_the_schema_as_by_ingestion(live: TestClient, blank: str) -> None:
    """Found by the fuzz run: a blank visitor id passed the schema, then every event was
    rejected as missing_visitor."""
    assert live.get(f"/v1/visitors/{blank}", headers=KEY).status_code == 422
    body = {"visitor_id": blank.replace("%C2%A0", "\xa0").replace("%E3%80%80", "\u3000"),
            "events": [event()]}  # fmt: skip
    assert live.post("/v1/events", json=body, headers=KEY).status_code == 422


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v1/visitors/nobody"])
def test_head_answers_like_get_without_a_body(live: TestClient, path: str) -> None:
    got, head = live.get(path, headers=KEY), live.head(path, headers=KEY)
    assert head.status_code == got.status_code != 405
    assert head.content == b""
    assert head.headers.get("content-type") == got.headers.get("content-type")


@pytest.mark.parametrize("field", ["price", "quantity", "revenue"])
def test_a_boolean_number_is_refused_naming_the_field(live: TestClient, field: str) -> None:
    """JSON ``true`` is not a price of 1: pydantic's lax mode would read it as one."""
    body = {"visitor_id": "v-bool", "events": [event(**{field: True})]}
    answer = live.post("/v1/events", json=body, headers=KEY)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"location": f"body.events.0.{field}", "message": "true is not a number or text"}
    ]


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_client_gone_mid_body_is_counted_499_not_500(
    live: TestClient, framing: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the hostile run: a chunked POST cut off mid-body was logged at ERROR and
    counted 500, the same cut with a Content-Length 499."""
    import asyncio

    part = b'{"visitor_id": "v-gone", "events": ['
    framing_header = (
        (b"transfer-encoding", b"chunked")
        if framing == "chunked"
        else (b"content-length", str(len(part) + 50).encode())
    )
    headers = [(b"content-type", b"application/json"), framing_header]
    headers += [(k.lower().encode(), v.encode()) for k, v in KEY.items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/events", "raw_path": b"/v1/events", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("t", 80),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": part, "more_body": True}]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    def closed() -> float:
        text = live.get("/metrics", headers=KEY).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("propensity_requests_total")
            and 'route="/v1/events"' in line
            and 'status="499"' in line
        )

    before = closed()
    with caplog.at_level("ERROR"):
        asyncio.run(live.app(scope, receive, send))  # type: ignore[arg-type]
    assert not any(m["type"] == "http.response.start" for m in sent)
    assert closed() == before + 1
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_an_id_with_surrounding_blanks_is_trimmed_as_ingest_trims_it(live: TestClient) -> None:
    """Ingest strips blanks around ids; the API kept them, so " v-trim " and "v-trim" were
    two visitors online and one in the lake."""
    body = {"visitor_id": "  v-trim ", "events": [event()]}
    answer = live.post("/v1/events", json=body, headers=KEY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["score"]["visitor_id"] == "v-trim"
    assert live.get("/v1/visitors/v-trim", headers=KEY).status_code == 200
    assert live.get("/v1/visitors/%20v-trim%20", headers=KEY).json()["visitor_id"] == "v-trim"
