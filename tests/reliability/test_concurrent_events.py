"""Concurrent ``POST /v1/events`` for one visitor from many clients: no lost update.

Sixteen client threads post orders for the same visitor at once against the real app (its
own threads and store), each re-score slowed by a random delay so that writes land out of
read order. Every record stored must come from the visitor's latest state (nothing appended
between a request's read and its write), the store must hold every posted event, and the
final record must be the one computed from the batch history plus *all* of them: its
expected value follows the average order value, which every order moves.

The same holds across replicas: two apps on one store (SQLite file or Redis), each with its
own threads and locks, as two processes or two machines would be. No lock spans replicas; a
record is stored only if no events were appended since its state was read (the race is
forced, not hoped for).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

from serving.api.app import create_app
from serving.api.realtime import Contact
from serving.api.state import ServingState
from serving.settings import ServingSettings
from serving.store.base import VisitorState
from serving.store.history import read_history
from tests.integration.serving.redis_server import redis_server
from tests.integration.serving.world import World, settings
from tests.reliability.conftest import KEY

NOW = datetime(2024, 2, 16, 12, tzinfo=UTC)
CONTACT = {"email_status": "subscribed", "ads_consent": "granted"}
CLIENTS, POSTS_PER_CLIENT = 16, 6


def _expected_record(state: ServingState, visitor: str) -> dict[str, object]:
    """The visitor scored now from the batch history and every stored posted event."""
    assert state.store is not None and state.served is not None
    stored = state.store.get_state(visitor)
    history = read_history(
        stored.batch_history, stored.posted_events, state.settings.max_history_events
    )
    scorer = state.served.scorer
    record = scorer.score(
        visitor,
        scorer.features_from_events(history, NOW),
        as_of=NOW,
        scored_at=NOW,
        contact=Contact(**CONTACT),
        run=state.store.current_run(),
    )
    return dict(orjson.loads(record))


def _superseded(state: ServingState) -> float | None:
    """Writes skipped for newer events, as ``/metrics`` exposes them."""
    return state.metrics.registry.get_sample_value("propensity_superseded_writes_total")


def _slow_scores(state: ServingState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the window between reading a visitor's state and storing the new record, so
    that puts land out of read order."""
    assert state.served is not None
    scorer = state.served.scorer
    score_many = scorer.score_many

    def slow_score(*args: Any, **kwargs: Any) -> list[bytes]:
        time.sleep(random.uniform(0, 0.006))
        return score_many(*args, **kwargs)

    monkeypatch.setattr(scorer, "score_many", slow_score)


def _order(visitor: str, client_number: int, k: int) -> dict[str, Any]:
    moment = NOW - timedelta(minutes=1 + client_number * POSTS_PER_CLIENT + k)
    return {
        "visitor_id": visitor,
        "events": [
            {
                "event_time": moment.isoformat(),
                "event_name": "purchase",
                "item_id": f"sku-{client_number}-{k}",
                "transaction_id": f"order-{client_number}-{k}",
                "price": 10.0,
                "quantity": 1,
                # Every order moves the average order value, hence the EV.
                "revenue": 10.0 + 7.0 * client_number + 1.3 * k,
            }
        ],
        "contactability": CONTACT,
    }


def _post_orders(clients: list[TestClient], visitor: str) -> list[int]:
    """``CLIENTS`` threads post ``POSTS_PER_CLIENT`` orders each, spread over ``clients``."""

    def post(client_number: int) -> list[int]:
        client = clients[client_number % len(clients)]
        return [
            client.post(
                "/v1/events", json=_order(visitor, client_number, k), headers=KEY
            ).status_code
            for k in range(POSTS_PER_CLIENT)
        ]

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [s for result in pool.map(post, range(CLIENTS)) for s in result]


def _assert_final_record_holds_every_event(
    client: TestClient, state: ServingState, visitor: str, before: int
) -> None:
    assert state.store is not None
    stored = state.store.get_state(visitor)
    assert len(stored.posted_events) - before == CLIENTS * POSTS_PER_CLIENT
    final = client.get(f"/v1/visitors/{visitor}").json()
    expected = _expected_record(state, visitor)
    assert (final["route"], final["reason"]) == (expected["route"], expected["reason"])
    # The expected value follows the average order value, which every posted order moves:
    # a record that missed any of them would not match.
    assert_allclose(
        [final["score"], final["expected_value"]],
        [expected["score"], expected["expected_value"]],
        rtol=1e-12,
    )


def test_concurrent_events_for_one_visitor_lose_nothing(
    scored: tuple[World, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, name, visitors = scored
    visitor = visitors[0]
    app = create_app(settings(), shared.paths(name), clock=lambda: NOW)
    with TestClient(app) as client:
        state: ServingState = app.state.serving
        assert state.store is not None and state.served is not None
        _slow_scores(state, monkeypatch)
        # Within one process requests are applied in order: every stored record comes from
        # the visitor's latest state (the real store, observed), although requests waiting
        # together are applied as one batch.
        store, stale, batches = state.store, [], []
        append_many, put_records, get_state = store.append_many, store.put_records, store.get_state

        def observed_append(appends: Any, keep: int) -> list[VisitorState]:
            batches.append(len(appends))
            return append_many(appends, keep)

        def observed_put_records(writes: Any) -> list[bool]:
            stale.extend(get_state(w.visitor_id).version != w.if_version for w in writes)
            return put_records(writes)

        monkeypatch.setattr(store, "append_many", observed_append)
        monkeypatch.setattr(store, "put_records", observed_put_records)
        before = len(state.store.get_state(visitor).posted_events)
        assert _post_orders([client], visitor) == [200] * CLIENTS * POSTS_PER_CLIENT
        # A visitor's requests in one batch are stored once, from the last one's state.
        assert 0 < len(stale) <= CLIENTS * POSTS_PER_CLIENT and not any(stale)
        assert sum(batches) == CLIENTS * POSTS_PER_CLIENT
        assert _superseded(state) == 0
        _assert_final_record_holds_every_event(client, state, visitor, before)


@pytest.fixture(params=["sqlite", "redis"])
def replicas_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServingSettings]:
    if request.param == "sqlite":
        yield settings()
        return
    with redis_server(tmp_path) as url:
        yield settings(store="redis", redis_url=url)


def test_a_replica_never_overwrites_a_newer_record(
    scored: tuple[World, str, list[str]],
    replicas_settings: ServingSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race, forced: replica A appends order 1 and starts re-scoring; replica B appends
    order 2, re-scores (orders 1 and 2) and stores its record; only then does A finish. A's
    record misses order 2 and must not replace B's."""
    shared, name, visitors = scored
    visitor = visitors[1]
    apps = [create_app(replicas_settings, shared.paths(name), clock=lambda: NOW) for _ in range(2)]
    with ExitStack() as stack:
        first, second = (stack.enter_context(TestClient(app)) for app in apps)
        a, b = (app.state.serving for app in apps)
        assert a.served is not None and a.store is not None and b.store is not None
        a_appended, b_stored = threading.Event(), threading.Event()
        scorer, append_many, put_records = (
            a.served.scorer,
            a.store.append_many,
            b.store.put_records,
        )
        score_many = scorer.score_many

        def a_append(appends: Any, keep: int) -> list[VisitorState]:
            appended = append_many(appends, keep)
            a_appended.set()
            return appended

        def a_score(*args: Any, **kwargs: Any) -> list[bytes]:
            assert b_stored.wait(30), "replica B did not store its record"
            return score_many(*args, **kwargs)

        def b_put(writes: Any) -> list[bool]:
            stored = put_records(writes)
            b_stored.set()
            return stored

        monkeypatch.setattr(a.store, "append_many", a_append)
        monkeypatch.setattr(scorer, "score_many", a_score)
        monkeypatch.setattr(b.store, "put_records", b_put)
        before = len(b.store.get_state(visitor).posted_events)
        with ThreadPoolExecutor(1) as pool:
            answer_a = pool.submit(
                first.post, "/v1/events", json=_order(visitor, 0, 0), headers=KEY
            )
            assert a_appended.wait(30), "replica A did not append"
            answer_b = second.post("/v1/events", json=_order(visitor, 1, 0), headers=KEY)
            assert answer_b.status_code == 200 and answer_a.result().status_code == 200
        assert _superseded(a) == 1  # A's record was not stored
        assert _superseded(b) == 0
        stored = b.store.get_state(visitor)
        assert len(stored.posted_events) - before == 2
        final = second.get(f"/v1/visitors/{visitor}").json()
        expected = _expected_record(b, visitor)
        assert_allclose(
            [final["score"], final["expected_value"]],
            [expected["score"], expected["expected_value"]],
            rtol=1e-12,
        )
