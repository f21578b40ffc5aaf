"""The real API (TestClient, lifespan included) on a real SQLite store and a registered
model: lookups, auth, event intake, problems instead of 500s, reload, metrics. One module:
the cases share one app and store, which take seconds to build."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_array_equal

from serving.api.app import create_app
from serving.api.head import HeadAsGet
from serving.api.hot_routes import HotRoutes
from serving.api.schemas import EventsResponse, VisitorScore
from serving.batch.job import score_visitors
from serving.store.history import read_history
from tests.integration.serving.world import KEY, World, event, register_tiny_model, settings, world


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    return world(tmp_path_factory)


@pytest.fixture(scope="module")
def scored(shared: World) -> tuple[World, list[str]]:
    summary = score_visitors(settings(), shared.paths("api"))
    import polars as pl

    visitors = pl.read_parquet(summary.files["scores"]).get_column("visitor_id").to_list()
    return shared, visitors


@pytest.fixture
def client(scored: tuple[World, list[str]]) -> Iterator[TestClient]:
    shared, _ = scored
    with TestClient(create_app(settings(), shared.paths("api"))) as test_client:
        yield test_client


def test_lookup_known_and_unknown(client: TestClient, scored: tuple[World, list[str]]) -> None:
    visitor = scored[1][0]
    found = client.get(f"/v1/visitors/{visitor}")
    assert found.status_code == 200
    assert VisitorScore.model_validate(found.json()).visitor_id == visitor
    missing = client.get("/v1/visitors/nobody-at-all")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "nobody-at-all" in missing.json()["detail"]


def test_events_rescore_and_are_stored(client: TestClient, scored: tuple[World, list[str]]) -> None:
    visitor = scored[1][1]
    body = {
        "visitor_id": visitor,
        "events": [event(), event(event_name="teleport"), event(event_time="yesterday")],
    }
    answer = client.post("/v1/events", json=body, headers=KEY)
    assert answer.status_code == 200, answer.text
    parsed = EventsResponse.model_validate(answer.json())
    assert parsed.accepted == 1
    assert [(r.index, r.reason) for r in parsed.rejected] == [
        (1, "unknown_event_name"),
        (2, "bad_timestamp"),
    ]
    assert parsed.score.source == "real_time"
    stored = client.get(f"/v1/visitors/{visitor}").json()
    assert stored["scored_at"] == answer.json()["score"]["scored_at"]
    again = client.post(
        "/v1/events",
        json={"visitor_id": visitor, "events": [event(event_time="nonsense")]},
        headers=KEY,
    )
    assert again.status_code == 422 and again.json()["errors"][0]["reason"] == "bad_timestamp"
    metrics = client.get("/metrics").text
    assert 'propensity_events_total{outcome="accepted"} 1.0' in metrics
    assert 'propensity_events_total{outcome="rejected"} 3.0' in metrics


def test_events_leave_the_explanation_to_the_first_lookup(
    client: TestClient, scored: tuple[World, list[str]]
) -> None:
    visitor = scored[1][2]
    state = client.app.state.serving  # type: ignore[attr-defined]
    body = {"visitor_id": visitor, "events": [event()]}
    posted = client.post("/v1/events", json=body, headers=KEY)
    assert posted.status_code == 200, posted.text
    answer = posted.json()["score"]
    assert answer["top_features"] is None
    pending = state.store.lookup(visitor)
    assert pending.record == orjson.dumps(answer) and pending.unexplained is not None
    # The pending inputs are the model inputs of the visitor's features at the answer's as_of.
    scorer = state.served.scorer
    now = state.store.get_state(visitor)
    history = read_history(now.batch_history, now.posted_events, state.settings.max_history_events)
    features = scorer.features_from_events(history, datetime.fromisoformat(answer["as_of"]))
    inputs = np.frombuffer(pending.unexplained).reshape(1, -1)
    assert_array_equal(inputs, scorer.model_inputs(features.reshape(1, -1)))
    looked_up = client.get(f"/v1/visitors/{visitor}").json()
    assert looked_up == {**answer, "top_features": scorer.top_features(inputs)[0]}
    assert len(looked_up["top_features"]) == state.settings.top_features
    assert state.store.lookup(visitor).unexplained is None  # explained once, stored
    assert client.get(f"/v1/visitors/{visitor}").json() == looked_up


def test_a_failed_explanation_never_fails_the_lookup(
    client: TestClient, scored: tuple[World, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    visitor = scored[1][5]
    state = client.app.state.serving  # type: ignore[attr-defined]
    body = {"visitor_id": visitor, "events": [event()]}
    answer = client.post("/v1/events", json=body, headers=KEY).json()["score"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("explainer down")

    with monkeypatch.context() as patched:
        patched.setattr(state.served.scorer, "explain_records", broken)
        looked_up = client.get(f"/v1/visitors/{visitor}")
        assert looked_up.status_code == 200 and looked_up.json() == answer
    assert state.store.lookup(visitor).unexplained is not None  # still pending
    with monkeypatch.context() as patched:
        patched.setattr(state.store, "put_explained", broken)
        explained = client.get(f"/v1/visitors/{visitor}")
        assert explained.status_code == 200 and explained.json()["top_features"]
    assert state.store.lookup(visitor).unexplained is not None  # not stored: next read again
    assert client.get(f"/v1/visitors/{visitor}").json() == explained.json()
    assert state.store.lookup(visitor).unexplained is None


def test_events_explained_inline_when_configured(scored: tuple[World, list[str]]) -> None:
    shared, visitors = scored
    app = create_app(settings(explain_events="inline"), shared.paths("api"))
    with TestClient(app) as inline:
        posted = inline.post(
            "/v1/events", json={"visitor_id": visitors[3], "events": [event()]}, headers=KEY
        )
        assert posted.status_code == 200, posted.text
        top = posted.json()["score"]["top_features"]
        assert top is not None and len(top) == app.state.serving.settings.top_features
        assert inline.get(f"/v1/visitors/{visitors[3]}").json()["top_features"] == top


def test_the_loaded_heap_is_kept_out_of_full_collections(client: TestClient) -> None:
    """Half a million objects alive after startup: a full cyclic collection over them
    stalls requests for hundreds of milliseconds, so startup freezes them."""
    import gc

    assert client.get("/readyz").status_code == 200
    assert gc.get_freeze_count() > 100_000


def test_write_routes_need_a_valid_key(client: TestClient) -> None:
    body = {"visitor_id": "v", "events": [event()]}
    assert client.post("/v1/events", json=body).status_code == 401
    assert client.post("/v1/events", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post("/v1/admin/reload").status_code == 401


def test_reads_can_be_closed(scored: tuple[World, list[str]]) -> None:
    shared, visitors = scored
    app = create_app(settings(read_requires_key=True), shared.paths("api"))
    with TestClient(app) as closed:
        assert closed.get(f"/v1/visitors/{visitors[0]}").status_code == 401
        assert closed.get(f"/v1/visitors/{visitors[0]}", headers=KEY).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"visitor_id": "v"},
        {"visitor_id": "v", "events": [{"event_name": "view_item"}]},
        {"visitor_id": "v", "events": [event(colour="red")]},
        {"visitor_id": "", "events": [event()]},
        {"visitor_id": "v" * 300, "events": [event()]},
        {"visitor_id": "v", "events": [event(price="free", quantity=-1)]},
        {"visitor_id": "v", "events": [event(event_time=10**30)]},
        {"visitor_id": "v", "events": [event(visitor_id="someone-else")]},
        {"visitor_id": "v", "events": [event()], "as_of": "2024-01-01T00:00:00"},
        [1, 2, 3],
    ],
)
def test_bad_input_is_a_4xx_with_a_message(client: TestClient, body: Any) -> None:
    for path in ("/v1/events", "/v1/score"):
        answer = client.post(path, json=body, headers=KEY)
        assert 400 <= answer.status_code < 500, (path, body, answer.text)
        assert answer.json()["detail"]


def test_posting_no_events_is_422(client: TestClient) -> None:
    answer = client.post("/v1/events", json={"visitor_id": "v", "events": []}, headers=KEY)
    assert answer.status_code == 422


def test_too_many_events_is_413(client: TestClient) -> None:
    body = {"visitor_id": "v", "events": [event()] * 501}
    assert client.post("/v1/events", json=body, headers=KEY).status_code == 413


def test_score_from_features(client: TestClient) -> None:
    features = {name: 1.0 for name in client.get("/v1/model").json()["feature_names"]}
    answer = client.post(
        "/v1/score",
        json={
            "visitor_id": "w",
            "features": features,
            "contactability": {"email_status": "subscribed"},
        },
    )
    assert answer.status_code == 200
    assert answer.json()["email_status"] == "subscribed"
    # A model input not given is missing, as a null one: the same score.
    given = client.post("/v1/score", json={"visitor_id": "w", "features": {"n_events": 1}})
    nulls = dict.fromkeys(features, None) | {"n_events": 1}
    as_null = client.post("/v1/score", json={"visitor_id": "w", "features": nulls})
    assert given.status_code == as_null.status_code == 200, given.text
    assert given.json()["score"] == as_null.json()["score"]
    wrong = client.post("/v1/score", json={"visitor_id": "w", "features": {"n_rockets": 1}})
    assert wrong.status_code == 422 and "unknown feature" in wrong.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"visitor_id": "w", "events": [], "features": {}},
        {"visitor_id": "w"},
    ],
    ids=["both", "neither"],
)
def test_score_takes_events_or_features_as_its_schema_says(
    client: TestClient, body: dict[str, Any]
) -> None:
    answer = client.post("/v1/score", json=body)
    assert answer.status_code == 422
    assert "either events or features" in answer.json()["detail"]
    schema = client.get("/openapi.json").json()["paths"]["/v1/score"]["post"]["requestBody"]
    assert len(schema["content"]["application/json"]["schema"]["oneOf"]) == 2


def test_the_schema_requires_what_the_handler_requires(client: TestClient) -> None:
    """Issue 23's probe: null event_name and event_time were schema-valid, then a 422."""
    spec = client.get("/openapi.json").json()["components"]["schemas"]["EventIn"]
    for name in ("event_time", "event_name"):
        assert name in spec["required"]
        assert {"type": "null"} not in spec["properties"][name].get("anyOf", []), name


def test_without_a_model_the_app_starts_but_is_not_ready(shared: World) -> None:
    app = create_app(settings(model_uri="models:/absent@champion"), shared.paths("no-model"))
    with TestClient(app) as bare:
        assert bare.get("/healthz").status_code == 200
        ready = bare.get("/readyz")
        assert ready.status_code == 503 and "absent" in ready.json()["reason"]
        scoring = bare.post("/v1/score", json={"visitor_id": "v", "events": [event()]})
        assert scoring.status_code == 503 and "absent" in scoring.json()["detail"]
        assert bare.get("/v1/model").status_code == 503


def test_reload_swaps_and_a_failed_reload_keeps_the_old_model(shared: World) -> None:
    from mlflow import MlflowClient

    name = "reload-test"
    register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=1)
    app = create_app(settings(model_uri=f"models:/{name}@champion"), shared.paths("reload"))
    with TestClient(app) as live:
        assert live.get("/v1/model").json()["version"] == "1"
        register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=2)
        # The heap is frozen for the cyclic collector, so a replaced model must be freed by
        # reference counting alone: no cycles in it.
        replaced = weakref.ref(live.app.state.serving.served)  # type: ignore[attr-defined]
        gc.disable()
        try:
            swapped = live.post("/v1/admin/reload", headers=KEY)
            assert replaced() is None
        finally:
            gc.enable()
        assert swapped.status_code == 200 and swapped.json()["model_version"] == "2"
        MlflowClient(shared.tracking_uri).delete_registered_model_alias(name, "champion")
        # A record left unexplained by version 2 is answered as it is by version 3: its
        # explanation is not version 3's to give.
        live.post("/v1/events", json={"visitor_id": "late", "events": [event()]}, headers=KEY)
        register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=5)
        assert live.post("/v1/admin/reload", headers=KEY).json()["model_version"] == "3"
        late = live.get("/v1/visitors/late").json()
        assert late["model_version"] == "2" and late["top_features"] is None
        MlflowClient(shared.tracking_uri).delete_registered_model_alias(name, "champion")
        failed = live.post("/v1/admin/reload", headers=KEY)
        assert failed.status_code == 503 and "still serving version 3" in failed.json()["detail"]
        assert live.get("/v1/model").json()["version"] == "3"
        assert live.get("/readyz").status_code == 200


def test_alias_poll_swaps_in_a_new_champion(shared: World) -> None:
    import time

    name = "poll-test"
    register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=3)
    polled = settings(model_uri=f"models:/{name}@champion", alias_poll_seconds=0.2)
    with TestClient(create_app(polled, shared.paths("poll"))) as live:
        assert live.get("/v1/model").json()["version"] == "1"
        register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=4)
        deadline = time.monotonic() + 30
        while live.get("/v1/model").json()["version"] != "2":
            assert time.monotonic() < deadline, "the alias poll did not reload"
            time.sleep(0.2)


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/v1/visitors/{visitor_id}",
        "/v1/score",
        "/v1/events",
        "/v1/model",
        "/readyz",
        "/v1/admin/reload",
    } <= set(spec["paths"])


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"]),
        ("/redoc", ["redoc.standalone.js"]),
    ],
)
def test_the_api_docs_work_offline(client: TestClient, page: str, assets: list[str]) -> None:
    """Issue 25: Swagger UI loaded from a CDN, a blank page without internet. Both pages and
    their assets are served by the API itself, without a key, like /openapi.json."""
    html = client.get(page)
    assert html.status_code == 200, html.text
    assert "cdn." not in html.text and "fonts.googleapis" not in html.text
    for asset in assets:
        assert f"/docs-assets/{asset}" in html.text
        served = client.get(f"/docs-assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 1_000


def test_metrics(client: TestClient, scored: tuple[World, list[str]]) -> None:
    client.get(f"/v1/visitors/{scored[1][0]}")
    body = {"visitor_id": scored[1][4], "events": [event()]}
    assert client.post("/v1/events", json=body, headers=KEY).status_code == 200
    text = client.get("/metrics").text
    assert 'propensity_requests_total{method="GET",route="/v1/visitors/{visitor_id}"' in text
    assert 'propensity_requests_total{method="POST",route="/v1/events",status="200"}' in text
    assert "propensity_event_batch_size_count 1.0" in text
    client.get(f"/v1/visitors/{scored[1][4]}")  # its top features computed now
    assert "propensity_explained_on_read_total 1.0" in client.get("/metrics").text
    assert 'propensity_model_info{version="1"} 1.0' in text
    assert "propensity_request_seconds_bucket" in text


def _front(app: Any) -> Any:
    """What answers first behind the HEAD adapter (``HeadAsGet`` wraps every stack)."""
    stack = app.middleware_stack
    assert isinstance(stack, HeadAsGet)
    return stack.app


def _through_the_stack(app: Any) -> TestClient:
    """A client whose requests skip the hot routes and take the app's full middleware stack
    (the app's lifespan must be running already)."""
    hot = _front(app)
    assert isinstance(hot, HotRoutes)  # the hot routes are in front, or this proves nothing

    async def full(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app
        await hot.stack(scope, receive, send)

    return TestClient(full)


JSON_KEY = {**KEY, "content-type": "application/json"}


def test_the_hot_routes_answer_as_the_full_stack(
    client: TestClient, scored: tuple[World, list[str]]
) -> None:
    visitors = scored[1]
    client.get("/healthz")  # builds the middleware stack
    full = _through_the_stack(client.app)
    two_keys = [("x-api-key", "k1"), ("x-api-key", "k2")]
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/v1/visitors/{visitors[5]}", {}),
        ("GET", "/v1/visitors/nobody-at-all", {}),
        ("GET", "/v1/visitors/a%20b", {}),
        ("GET", f"/v1/visitors/{'x' * 300}", {}),
        ("GET", "/v1/visitors/%FF", {}),
        ("GET", f"/v1/visitors/{visitors[5]}", {"headers": two_keys}),
        ("POST", "/v1/events", {"json": {"visitor_id": "v", "events": [event()]}}),
        ("POST", "/v1/events", {"json": {"visitor_id": "v"}, "headers": two_keys}),
        ("POST", "/v1/events", {"json": {"visitor_id": "v", "events": []}, "headers": KEY}),
        ("POST", "/v1/events", {"json": [1, 2], "headers": KEY}),
        ("POST", "/v1/events", {"content": b'{"visitor_id": "v", "ev', "headers": JSON_KEY}),
        ("POST", "/v1/events", {"content": b"\xff\xfe", "headers": JSON_KEY}),
        ("POST", "/v1/events", {"content": b"[" * 100_000, "headers": JSON_KEY}),  # 400
        ("POST", "/v1/events", {"content": b'{"visitor_id": "v"}', "headers": KEY}),  # 415
        (
            "POST",
            "/v1/events",
            {"json": {"visitor_id": "v", "events": [event()] * 501}, "headers": KEY},
        ),
        (
            "POST",
            "/v1/events",
            {"json": {"visitor_id": "v", "events": [event(price=-1)]}, "headers": KEY},
        ),
    ]
    for method, path, options in requests:
        hot, stack = client.request(method, path, **options), full.request(method, path, **options)
        assert hot.status_code == stack.status_code, (method, path)
        # Every header: content type and length, WWW-Authenticate, and any a middleware adds.
        assert dict(hot.headers) == dict(stack.headers), (method, path)
        assert hot.json() == stack.json(), (method, path)
    # Re-scores of two visitors, one each way: the same shape.
    answers = [
        way.post("/v1/events", json={"visitor_id": v, "events": [event()]}, headers=KEY)
        for way, v in ((client, visitors[6]), (full, visitors[7]))
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json().keys() == answers[1].json().keys()
    metrics = client.get("/metrics").text
    # Counted alike both ways (each request above went once each way).
    for status, count in ((200, 2), (400, 2), (404, 4), (422, 4)):
        line = f'route="/v1/visitors/{{visitor_id}}",status="{status}"}} {count}.0'
        assert f'propensity_requests_total{{method="GET",{line}' in metrics
    for status, count in ((200, 2), (400, 4), (401, 2), (413, 2), (415, 2), (422, 10)):
        assert f'route="/v1/events",status="{status}"}} {count}.0' in metrics


def test_requests_the_hot_routes_leave_to_the_stack(
    client: TestClient, scored: tuple[World, list[str]]
) -> None:
    visitor = scored[1][8]
    head = client.head(f"/v1/visitors/{visitor}")  # answered as the GET it runs as
    assert (head.status_code, head.content) == (200, b"")
    slash = client.get(f"/v1/visitors/{visitor}/", follow_redirects=False)
    assert slash.status_code == 307
    assert slash.headers["location"].endswith(f"/v1/visitors/{visitor}")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stack reads it to the limit
        yield orjson.dumps({"visitor_id": visitor, "events": [event()]})

    answer = client.post(
        "/v1/events", content=chunks(), headers={**KEY, "content-type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert 'route="/v1/events",status="200"} 1.0' in client.get("/metrics").text


def test_with_tracing_every_request_takes_the_stack(scored: tuple[World, list[str]]) -> None:
    shared, visitors = scored
    with TestClient(create_app(settings(opentelemetry=True), shared.paths("api"))) as traced:
        assert traced.get(f"/v1/visitors/{visitors[0]}").status_code == 200
        assert not isinstance(_front(traced.app), HotRoutes)


def test_redis_backend_end_to_end(shared: World, tmp_path: Any) -> None:
    from tests.integration.serving.redis_server import redis_server

    with redis_server(tmp_path) as url:
        redis_settings = settings(store="redis", redis_url=url)
        paths = shared.paths("redis")
        summary = score_visitors(redis_settings, paths)
        with TestClient(create_app(redis_settings, paths)) as live:
            assert live.get("/readyz").status_code == 200
            visitor = summary.files and live.get("/v1/model").json()["last_run"]["run_id"]
            assert visitor == summary.run_id
            import polars as pl

            first = pl.read_parquet(summary.files["scores"]).row(0, named=True)
            found = live.get(f"/v1/visitors/{first['visitor_id']}").json()
            assert found["score"] == first["score"]
            posted = live.post(
                "/v1/events",
                headers=KEY,
                json={"visitor_id": first["visitor_id"], "events": [event()]},
            )
            assert posted.status_code == 200
            assert live.get(f"/v1/visitors/{first['visitor_id']}").json()["source"] == "real_time"


def _with_cors(app: Any) -> Any:
    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(CORSMiddleware, allow_origins=["https://shop.example"])
    return app


def test_middleware_the_hot_routes_would_skip_stops_the_start(
    scored: tuple[World, list[str]],
) -> None:
    """CORS added to an app with hot routes: the app refuses to start, under TestClient and
    under uvicorn (``run_api``'s lifespan="on"), naming the middleware and the way out."""
    import uvicorn

    from serving.api.hot_routes import UnreproducedMiddleware
    from tests.integration.serving.redis_server import free_port

    shared, _ = scored
    with (
        pytest.raises(UnreproducedMiddleware, match=r"CORSMiddleware.*HOT_ROUTES=false"),
        TestClient(_with_cors(create_app(settings(), shared.paths("api")))),
    ):
        pass
    app = _with_cors(create_app(settings(), shared.paths("api")))
    server = uvicorn.Server(
        uvicorn.Config(app, port=free_port(), lifespan="on", log_level="critical")
    )
    with pytest.raises(SystemExit):  # uvicorn's exit on a failed startup
        server.run()
    assert not server.started


def test_without_hot_routes_every_request_runs_the_middleware(
    scored: tuple[World, list[str]],
) -> None:
    shared, visitors = scored
    app = _with_cors(create_app(settings(hot_routes=False), shared.paths("api")))
    origin = {"origin": "https://shop.example"}
    with TestClient(app) as live:
        assert not isinstance(_front(live.app), HotRoutes)
        lookup = live.get(f"/v1/visitors/{visitors[0]}", headers=origin)
        posted = live.post(
            "/v1/events", json={"visitor_id": visitors[1], "events": [event()]},
            headers={**KEY, **origin},
        )  # fmt: skip
        for answer in (lookup, posted):
            assert answer.status_code == 200, answer.text
            assert answer.headers["access-control-allow-origin"] == "https://shop.example"


def test_an_email_in_an_identifier_is_rejected_naming_the_field(
    client: TestClient, scored: tuple[World, list[str]]
) -> None:
    """Issue 24 item 11: an email in ``visitor_id`` or ``user_id`` never reaches the store."""
    address = "jane.doe@example.com"
    body = {"visitor_id": address, "events": [event()]}
    answer = client.post("/v1/events", json=body, headers=KEY)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert (error["reason"], error["detail"]) == ("pii_in_identifier", "visitor_id=j***@***.com")
    assert address not in answer.text
    scoring = client.post("/v1/score", json=body, headers=KEY)
    assert scoring.status_code == 422 and address not in scoring.text

    visitor = scored[1][4]
    body = {"visitor_id": visitor, "events": [event(), event(user_id=address)]}
    mixed = client.post("/v1/events", json=body, headers=KEY)
    assert mixed.status_code == 200, mixed.text
    rejected = [(r["index"], r["reason"], r["detail"]) for r in mixed.json()["rejected"]]
    assert rejected == [(1, "pii_in_identifier", "user_id=j***@***.com")]
