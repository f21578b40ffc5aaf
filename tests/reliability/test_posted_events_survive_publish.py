"""Issue 24, item 13: events posted to the API survive the next batch publish. The publish
replaced the store whole: a visitor seen only through ``POST /v1/events`` answered 404
afterwards, and a purchase posted after the run's cut no longer suppressed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.batch.job import score_visitors
from tests.integration.serving.world import World, settings
from tests.reliability.conftest import KEY, event


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _post(client: TestClient, visitor: str, at: datetime, **fields: object) -> dict[str, object]:
    """One event at ``at``, scored a minute after, the visitor subscribed."""
    body = {"visitor_id": visitor, "events": [event(event_time=_iso(at), **fields)],
            "as_of": _iso(at + timedelta(minutes=1)),
            "contactability": {"email_status": "subscribed", "ads_consent": "granted"}}  # fmt: skip
    answer = client.post("/v1/events", json=body, headers=KEY)
    assert answer.status_code == 200, answer.text
    return answer.json()["score"]  # type: ignore[no-any-return]


def test_posted_events_survive_the_next_batch_publish(shared: World) -> None:
    paths = shared.paths("posted-survive-publish")
    first = score_visitors(settings(), paths)
    in_run = pl.read_parquet(first.files["scores"]).get_column("visitor_id")[0]
    cut = shared.events.get_column("event_time").max()
    assert isinstance(cut, datetime)
    next_as_of = cut + timedelta(hours=2)
    with TestClient(create_app(settings(), paths)) as client:
        _post(client, "seen-only-by-the-api", cut + timedelta(hours=1), event_name="page_view")
        bought = _post(client, in_run, cut + timedelta(hours=3), event_name="purchase",
                       revenue=80.0, transaction_id="t-after-the-cut")  # fmt: skip
        assert (bought["route"], bought["reason"]) == ("none", "recent_purchase")

        second = score_visitors(settings(), paths, as_of=next_as_of)
        assert not second.skipped and second.run_id != first.run_id

        online = client.get("/v1/visitors/seen-only-by-the-api", headers=KEY)
        assert online.status_code == 200, online.text
        assert online.json()["source"] == "real_time"
        stored = client.get(f"/v1/visitors/{in_run}", headers=KEY).json()
        assert (stored["route"], stored["reason"]) == ("none", "recent_purchase"), stored
        # The carried events are the visitor's history: the next post re-scores with both.
        again = _post(client, "seen-only-by-the-api", cut + timedelta(hours=4),
                      event_name="add_to_cart")  # fmt: skip
        assert again["source"] == "real_time"
