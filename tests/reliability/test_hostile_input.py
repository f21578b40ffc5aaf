"""Hostile and malformed requests against the real app: each is a 4xx problem with a clear
message, never a 5xx, within the limits of ``ServingSettings``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from tests.integration.serving.world import World, settings
from tests.reliability.conftest import KEY, event

WRITES = ("/v1/events", "/v1/score")
LIMITS = settings(max_body_bytes=64_000, max_events_per_request=50)


@pytest.fixture(scope="module")
def strict(scored: tuple[World, str, list[str]]) -> Iterator[TestClient]:
    """An app with small limits; server errors come back as 500s instead of raising."""
    shared, name, _ = scored
    app = create_app(LIMITS, shared.paths(name))
    with TestClient(app, raise_server_exceptions=False) as live:
        yield live


def _post(client: TestClient, path: str, body: str) -> tuple[int, dict[str, object]]:
    answer = client.post(
        path, content=body.encode(), headers={**KEY, "content-type": "application/json"}
    )
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    return answer.status_code, answer.json()


def _events_body(events: str, **extra: str) -> str:
    fields = "".join(f',"{k}":{v}' for k, v in extra.items())
    return f'{{"visitor_id":"v-1","events":[{events}]{fields}}}'


ONE = '{"event_time":"2024-02-09T10:00:00Z","event_name":"add_to_cart"}'


@pytest.mark.parametrize("path", WRITES)
def test_oversized_body_is_413_naming_the_limit(strict: TestClient, path: str) -> None:
    padding = "x" * 70_000
    status, problem = _post(strict, path, _events_body(ONE, note=f'"{padding}"'))
    assert status == 413
    assert "64000 bytes" in str(problem["detail"])


@pytest.mark.parametrize("path", WRITES)
def test_huge_event_batch_is_413(strict: TestClient, path: str) -> None:
    within_bytes = _events_body(",".join([ONE] * 51))  # ~3 kB: the event count binds
    status, problem = _post(strict, path, within_bytes)
    assert status == 413 and "at most 50" in str(problem["detail"])
    too_many_bytes = _events_body(",".join([ONE] * 100_000))  # ~6 MB: refused unread
    assert _post(strict, path, too_many_bytes)[0] == 413


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize("depth", [40, 5_000])
def test_deeply_nested_json_is_a_4xx(strict: TestClient, path: str, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    status, problem = _post(strict, path, _events_body(nested))
    assert status in (400, 422), problem
    assert problem["detail"]


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize(
    ("event_time", "reason"),
    [
        ("1850-01-01T00:00:00Z", "timestamp_too_old"),
        ("0001-01-01T00:00:00Z", "timestamp_too_old"),
        ("9999-12-31T23:59:59Z", "timestamp_in_future"),
        ("2999-01-01T00:00:00Z", "timestamp_in_future"),
    ],
)
def test_timestamps_far_away_are_rejected(
    strict: TestClient, path: str, event_time: str, reason: str
) -> None:
    body = _events_body(f'{{"event_time":"{event_time}","event_name":"add_to_cart"}}')
    status, problem = _post(strict, path, body)
    assert status == 422
    assert problem["errors"] == [
        {"index": 0, "reason": reason, "detail": problem["errors"][0]["detail"]}
    ]  # type: ignore[index]


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize("as_of", ["9999-12-31T23:59:59Z", "1900-01-01T00:00:00Z"])
def test_as_of_far_away_is_422(strict: TestClient, path: str, as_of: str) -> None:
    status, problem = _post(strict, path, _events_body(ONE, as_of=f'"{as_of}"'))
    assert status == 422 and "as_of" in str(problem["detail"])


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize(
    "visitor_id",
    [
        r"v\u0000x",  # NUL
        r"v\nx",  # line break (log injection)
        r"v\u001bx",  # terminal escape
        r"v\u0085x",  # C1 control
        r"v\u202ex",  # right-to-left override
        r"v\u200bx",  # zero-width space
        r"v\u2028x",  # line separator
        r"v\ud800x",  # lone surrogate: not Unicode text at all
        "",
    ],
)
def test_control_and_invisible_characters_in_ids_are_422(
    strict: TestClient, path: str, visitor_id: str
) -> None:
    body = f'{{"visitor_id":"{visitor_id}","events":[{ONE}]}}'
    status, problem = _post(strict, path, body)
    assert status == 422, problem
    assert "visitor_id" in str(problem["detail"])


@pytest.mark.parametrize("path", WRITES)
def test_lone_surrogate_in_an_event_field_is_422(strict: TestClient, path: str) -> None:
    body = _events_body(
        '{"event_time":"2024-02-09T10:00:00Z","event_name":"add_to_cart","item_id":"\\udc00"}'
    )
    assert _post(strict, path, body)[0] == 422


def test_printable_unicode_ids_are_accepted(strict: TestClient) -> None:
    """Ingestion accepts them into the lake, so the API must be able to serve them."""
    for visitor_id in ("visiteur-é", "用户-7", "😀"):
        answer = strict.post(
            "/v1/events", json={"visitor_id": visitor_id, "events": [event()]}, headers=KEY
        )
        assert answer.status_code == 200, answer.text
        assert strict.get(f"/v1/visitors/{visitor_id}").json()["visitor_id"] == visitor_id


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_rejected(strict: TestClient, number: str) -> None:
    features = {n: 1.0 for n in strict.get("/v1/model").json()["feature_names"]}
    listed = ",".join(f'"{k}":{v}' for k, v in features.items())
    body = f'{{"visitor_id":"v-1","features":{{{listed},"n_events":{number}}}}}'
    status, problem = _post(strict, "/v1/score", body)
    assert status == 422 and "finite" in str(problem["detail"]), problem
    for path in WRITES:
        priced = _events_body(
            f'{{"event_time":"2024-02-09T10:00:00Z","event_name":"add_to_cart","price":{number}}}'
        )
        status, problem = _post(strict, path, priced)
        assert status == 422
        assert problem["errors"][0]["reason"] == "bad_price"  # type: ignore[index]


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize(
    "body",
    ["", "{", "null", '"text"', "[]", "\x00\x01\x02", '{"visitor_id": 1e999999}', "9" * 5000],
)
def test_garbage_bodies_are_a_4xx(strict: TestClient, path: str, body: str) -> None:
    status, problem = _post(strict, path, body)
    assert 400 <= status < 500 and problem["detail"], problem


def test_unreadable_lookup_ids_are_a_4xx(strict: TestClient) -> None:
    for raw in ("%00", "%ED%A0%80", "%FF%FE", "a%0Ab"):
        answer = strict.get(f"/v1/visitors/{raw}")
        assert 400 <= answer.status_code < 500, (raw, answer.status_code)


def test_oversized_body_without_a_length_is_413(strict: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"visitor_id":"v-1","events":['
        for _ in range(2_000):
            yield (ONE + ",").encode()
        yield ONE.encode() + b"]}"

    answer = strict.post(
        "/v1/events", content=chunks(), headers={**KEY, "content-type": "application/json"}
    )
    assert answer.status_code == 413 and "64000 bytes" in answer.json()["detail"]
    small = strict.post(
        "/v1/events",
        content=iter([_events_body(ONE).encode()]),
        headers={**KEY, "content-type": "application/json"},
    )
    assert small.status_code == 200, small.text
