"""Concurrent ``POST /v1/events`` for one visitor from many clients: no lost update.

Sixteen client threads post orders for the same visitor at once against the real app (its
own threads and store), each re-score slowed by a random delay so that writes land out of
read order. Every record stored must come from the visitor's latest state (nothing appended
between a request's read and its write), the store must hold every posted event, and the
final record must be the one computed from the batch history plus *all* of them: its
expected value follows the average order value, which every order moves.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

from serving.api import create_app
from serving.history import read_history
from serving.realtime import Contact
from serving.state import ServingState
from serving.store import VisitorState
from tests.integration.serving_world import World, settings
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


def test_concurrent_events_for_one_visitor_lose_nothing(
    scored: tuple[World, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, name, visitors = scored
    visitor = visitors[0]
    # As many event threads as clients: the most interleaving the lock has to prevent.
    app = create_app(settings(event_threads=CLIENTS), shared.paths(name), clock=lambda: NOW)
    with TestClient(app) as client:
        state: ServingState = app.state.serving
        assert state.store is not None and state.served is not None
        # Widen the window between reading a visitor's state and storing the new record
        # (without the per-visitor lock, the last record stored then misses events).
        scorer = state.served.scorer
        score = scorer.score

        def slow_score(*args: Any, **kwargs: Any) -> bytes:
            time.sleep(random.uniform(0, 0.006))  # puts land out of read order
            return score(*args, **kwargs)

        monkeypatch.setattr(scorer, "score", slow_score)
        # Every stored record must come from the visitor's latest state: nothing appended
        # between a request's read and its write (the real store, observed).
        store, seen, stale = state.store, threading.local(), []
        get_state, put_record = store.get_state, store.put_record

        def observed_get_state(visitor_id: str) -> VisitorState:
            seen.state = get_state(visitor_id)
            return seen.state

        def observed_put_record(visitor_id: str, record: bytes) -> None:
            now_posted = len(get_state(visitor_id).posted_events)
            stale.append(now_posted != len(seen.state.posted_events))
            put_record(visitor_id, record)

        monkeypatch.setattr(store, "get_state", observed_get_state)
        monkeypatch.setattr(store, "put_record", observed_put_record)
        before = len(state.store.get_state(visitor).posted_events)

        def post(client_number: int) -> list[int]:
            statuses = []
            for k in range(POSTS_PER_CLIENT):
                moment = NOW - timedelta(minutes=1 + client_number * POSTS_PER_CLIENT + k)
                body = {
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
                answer = client.post("/v1/events", json=body, headers=KEY)
                statuses.append(answer.status_code)
            return statuses

        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = [s for result in pool.map(post, range(CLIENTS)) for s in result]
        assert statuses == [200] * CLIENTS * POSTS_PER_CLIENT
        assert len(stale) == CLIENTS * POSTS_PER_CLIENT and not any(stale)

        stored = state.store.get_state(visitor)
        assert len(stored.posted_events) - before == CLIENTS * POSTS_PER_CLIENT
        final = client.get(f"/v1/visitors/{visitor}").json()
        expected = _expected_record(state, visitor)
        assert (final["route"], final["reason"]) == (expected["route"], expected["reason"])
        # The expected value follows the average order value, which every posted order
        # moves: a record that missed any of them would not match.
        assert_allclose(
            [final["score"], final["expected_value"]],
            [expected["score"], expected["expected_value"]],
            rtol=1e-12,
        )
