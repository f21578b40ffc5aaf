"""Once API keys are configured, reads need one too (unless the operator opens them with
``open_reads``); a read-only key opens reads and nothing else; the OpenAPI document declares
the ``ApiKey`` security scheme instead of an optional header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from tests.integration.serving.world import World, settings
from tests.reliability.conftest import KEY, event

READER = "read-only-4b1e"
READS = [
    ("GET", "/v1/visitors/{visitor}", None),
    ("POST", "/v1/score", {"visitor_id": "v-read", "events": [event()]}),
    ("GET", "/v1/model", None),
]


@pytest.fixture
def closed(scored: tuple[World, str, list[str]]) -> Iterator[tuple[TestClient, str]]:
    shared, name, visitors = scored
    app = create_app(settings(open_reads=False, read_keys=[READER]), shared.paths(name))
    with TestClient(app) as live:
        yield live, visitors[0]


@pytest.mark.parametrize(("method", "path", "body"), READS)
def test_reads_need_a_key_once_keys_are_set(
    closed: tuple[TestClient, str], method: str, path: str, body: object
) -> None:
    client, visitor = closed
    url = path.format(visitor=visitor)
    for headers in ({}, {"X-API-Key": "wrong"}):
        refused = client.request(method, url, json=body, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"] == "ApiKey"
    for key in (KEY["X-API-Key"], READER):
        answer = client.request(method, url, json=body, headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text


def test_a_read_only_key_opens_no_write(closed: tuple[TestClient, str]) -> None:
    client, visitor = closed
    headers = {"X-API-Key": READER}
    posted = client.post("/v1/events", json={"visitor_id": visitor, "events": [event()]},
                         headers=headers)  # fmt: skip
    assert posted.status_code == 401, posted.text
    assert client.post("/v1/admin/reload", headers=headers).status_code == 401


def test_open_reads_answers_without_a_key(scored: tuple[World, str, list[str]]) -> None:
    shared, name, visitors = scored
    with TestClient(create_app(settings(open_reads=True), shared.paths(name))) as live:
        assert live.get(f"/v1/visitors/{visitors[0]}").status_code == 200


def test_the_openapi_document_declares_an_api_key_scheme(closed: tuple[TestClient, str]) -> None:
    document = closed[0].get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "X-API-Key",
                      "description": "an API key"}  # fmt: skip
    for method, path in [("get", "/v1/visitors/{visitor_id}"), ("post", "/v1/score"),
                         ("post", "/v1/events"), ("get", "/v1/model")]:  # fmt: skip
        operation = document["paths"][path][method]
        assert operation["security"] == [{"ApiKey": []}], (path, operation.get("security"))
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        assert not any(p["name"].lower() == "x-api-key" for p in headers), path
