"""For the same visitor and as_of, the batch job, POST /v1/score (online feature path) and
POST /v1/events (stored history + posted events) give the same score and decision."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

from features.ingest.contacts import write_contacts
from features.ingest.lake_writer import write_partitions
from serving.api.app import create_app
from serving.batch.job import ScoringSummary, score_visitors
from serving.settings import ServingPaths
from tests.integration.serving.world import API_KEY, World, settings, world

FIELDS = (
    "item_id",
    "item_category",
    "price",
    "quantity",
    "revenue",
    "transaction_id",
    "session_id",
    "user_id",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, ScoringSummary, pl.DataFrame]:
    shared = world(tmp_path_factory)
    summary = score_visitors(settings(), shared.paths("parity"))
    return shared, summary, pl.read_parquet(summary.files["scores"])


def _posted(events: pl.DataFrame) -> list[dict[str, Any]]:
    posted = []
    for row in events.sort("event_time").iter_rows(named=True):
        event = {k: row[k] for k in FIELDS if row[k] is not None}
        event["event_time"] = row["event_time"].isoformat()
        event["event_name"] = row["event_name"]
        posted.append(event)
    return posted


def _sample(scores: pl.DataFrame) -> list[str]:
    """A few visitors of every route the run produced (plus the top scorer)."""
    picks = scores.sort("score", descending=True).head(1).get_column("visitor_id").to_list()
    for route in scores.get_column("route").unique().sort():
        picks += scores.filter(pl.col("route") == route).head(3).get_column("visitor_id").to_list()
    return picks


def _contact(lake_dir: Any, visitor: str) -> dict[str, str]:
    contacts = pl.read_parquet(lake_dir / "contacts" / "contacts.parquet")
    row = contacts.filter(pl.col("visitor_id") == visitor)
    if row.is_empty():
        return {"email_status": "unknown", "ads_consent": "unknown"}
    return {"email_status": row["email_status"][0], "ads_consent": row["ads_consent"][0]}


def _same(answer: dict[str, Any], batch: dict[str, Any]) -> None:
    assert_allclose(answer["score"], batch["score"], rtol=1e-12)
    assert_allclose(answer["expected_value"], batch["expected_value"], rtol=1e-9, atol=1e-12)
    assert (answer["route"], answer["reason"], answer["decile"]) == (
        batch["route"],
        batch["reason"],
        batch["decile"],
    )


def test_score_endpoint_matches_the_batch(run: tuple[World, ScoringSummary, pl.DataFrame]) -> None:
    shared, summary, scores = run
    as_of = summary.as_of
    window = shared.events.filter(pl.col("event_time") < as_of)
    with TestClient(create_app(settings(), shared.paths("parity"))) as client:
        for visitor in _sample(scores):
            batch = scores.filter(pl.col("visitor_id") == visitor).row(0, named=True)
            events = _posted(window.filter(pl.col("visitor_id") == visitor))
            answer = client.post(
                "/v1/score",
                json={
                    "visitor_id": visitor,
                    "events": events,
                    "as_of": as_of.isoformat(),
                    "contactability": _contact(shared.lake_dir, visitor),
                },
            )
            assert answer.status_code == 200, answer.text
            _same(answer.json(), batch)


def _post_a_later_page_view(client: TestClient, visitor: str, as_of: datetime) -> Any:
    """POST /v1/events of one page view an hour after ``as_of``, scored as of ``as_of``: the
    event is stored but does not count, so the answer must be the batch's."""
    return client.post(
        "/v1/events",
        headers={"X-API-Key": API_KEY},
        json={
            "visitor_id": visitor,
            "as_of": as_of.isoformat(),
            "events": [
                {"event_time": (as_of + timedelta(hours=1)).isoformat(), "event_name": "page_view"}
            ],
        },
    )


def test_events_endpoint_matches_the_batch(run: tuple[World, ScoringSummary, pl.DataFrame]) -> None:
    """An event after as_of is stored but does not count at as_of: the stored history alone
    must reproduce the batch features."""
    shared, summary, scores = run
    with TestClient(create_app(settings(), shared.paths("parity"))) as client:
        for visitor in _sample(scores):
            batch = scores.filter(pl.col("visitor_id") == visitor).row(0, named=True)
            answer = _post_a_later_page_view(client, visitor, summary.as_of)
            assert answer.status_code == 200, answer.text
            _same(answer.json()["score"], batch)


def test_events_batched_together_match_the_batch(
    run: tuple[World, ScoringSummary, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests that wait together are re-scored as one batch (one model call for several
    visitors, one of them twice): each answer is still its own visitor's batch answer."""
    shared, summary, scores = run
    visitors = _sample(scores)
    visitors.append(visitors[0])
    with TestClient(create_app(settings(), shared.paths("parity"))) as client:
        state = client.app.state.serving  # type: ignore[attr-defined]
        scorer, gate, sizes = state.served.scorer, threading.Event(), []
        score_many = scorer.score_many

        def held(visitors: Any, *args: Any, **kwargs: Any) -> list[bytes]:
            # The first call waits until every other request is queued behind it.
            sizes.append(len(visitors))
            gate.wait(30)
            return score_many(visitors, *args, **kwargs)

        monkeypatch.setattr(scorer, "score_many", held)

        with ThreadPoolExecutor(len(visitors)) as pool:
            answers = [
                pool.submit(_post_a_later_page_view, client, v, summary.as_of) for v in visitors
            ]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (
                not sizes or state.rescorer._queue.qsize() < len(visitors) - sizes[0]
            ):
                time.sleep(0.005)
            gate.set()
            for visitor, answer in zip(visitors, answers, strict=True):
                assert answer.result().status_code == 200, answer.result().text
                batch = scores.filter(pl.col("visitor_id") == visitor).row(0, named=True)
                _same(answer.result().json()["score"], batch)
        # The first alone (or nearly), then every other in one batch.
        assert sum(sizes) == len(visitors) and len(sizes) <= 3
        assert max(sizes) >= len(visitors) // 2


def test_events_then_batch_on_the_grown_lake(
    run: tuple[World, ScoringSummary, pl.DataFrame], tmp_path: Any
) -> None:
    """Post new events, then run the batch on a lake holding the same events: same score."""
    shared, summary, scores = run
    visitor = _sample(scores)[0]
    moment = summary.as_of + timedelta(hours=2)
    new = [
        {
            "event_time": (moment + timedelta(minutes=i)).isoformat(),
            "event_name": name,
            "item_id": "sku-9",
            "price": 30.0,
            "quantity": 1,
        }
        for i, name in enumerate(["view_item", "add_to_cart", "begin_checkout"])
    ]
    as_of = moment + timedelta(hours=1)
    with TestClient(create_app(settings(), shared.paths("parity-grown"))) as client:
        score_visitors(settings(), shared.paths("parity-grown"), as_of=summary.as_of)
        online = client.post(
            "/v1/events",
            headers={"X-API-Key": API_KEY},
            json={"visitor_id": visitor, "events": new, "as_of": as_of.isoformat()},
        ).json()["score"]
    lake = tmp_path / "lake"
    grown = pl.concat(
        [
            shared.events,
            pl.DataFrame(
                [
                    {
                        "visitor_id": visitor,
                        "event_time": datetime.fromisoformat(str(e["event_time"])),
                        "event_name": e["event_name"],
                        "item_id": "sku-9",
                        "price": 30.0,
                        "quantity": 1,
                        "source": "api",
                    }
                    for e in new
                ]
            ).cast(
                {k: v for k, v in shared.events.schema.items() if k in ("event_time", "quantity")}
            ),
        ],
        how="diagonal_relaxed",
    ).select(shared.events.columns)
    write_partitions(grown, lake, ingest_id="grown")
    write_contacts(lake, pl.read_parquet(shared.lake_dir / "contacts" / "contacts.parquet"))
    paths = ServingPaths(
        lake_dir=lake,
        outputs_dir=tmp_path / "out",
        serving_dir=tmp_path / "serving",
        tracking_uri=shared.tracking_uri,
    )
    rerun = score_visitors(settings(), paths, as_of=as_of)
    batch = pl.read_parquet(rerun.files["scores"]).filter(pl.col("visitor_id") == visitor)
    assert_allclose(online["score"], batch["score"][0], rtol=1e-12)
    assert (online["route"], online["reason"]) == (batch["route"][0], batch["reason"][0])
    assert not np.isclose(
        online["score"], scores.filter(pl.col("visitor_id") == visitor)["score"][0], rtol=1e-9
    )
