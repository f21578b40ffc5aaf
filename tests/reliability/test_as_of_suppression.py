"""A caller's ``as_of`` cannot make the stored record forget events the store holds: a
purchase posted, then a page view posted as of a few minutes before it, is answered as of
then but not stored; the visitor stays suppressed (``none/recent_purchase``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.reliability.conftest import KEY, event

PURCHASE_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _post(client: TestClient, body: dict[str, object]) -> dict[str, object]:
    answer = client.post("/v1/events", json=body, headers=KEY)
    assert answer.status_code == 200, answer.text
    return answer.json()["score"]  # type: ignore[no-any-return]


def test_an_as_of_before_a_stored_purchase_is_answered_not_stored(client: TestClient) -> None:
    visitor = "as-of-before-purchase"
    subscribed = {"email_status": "subscribed", "ads_consent": "granted"}
    purchase = event(event_time=_iso(PURCHASE_AT), event_name="purchase", revenue=120.0,
                     transaction_id="t-1")  # fmt: skip
    after_purchase = _post(
        client, {"visitor_id": visitor, "events": [purchase], "contactability": subscribed}
    )
    assert (after_purchase["route"], after_purchase["reason"]) == ("none", "recent_purchase")
    earlier = PURCHASE_AT - timedelta(minutes=5)
    view = event(event_time=_iso(earlier - timedelta(minutes=1)), event_name="page_view")
    answered = _post(client, {"visitor_id": visitor, "events": [view], "as_of": _iso(earlier)})
    assert answered["reason"] != "recent_purchase"  # scored as of then: the purchase not yet
    stored = client.get(f"/v1/visitors/{visitor}", headers=KEY).json()
    assert (stored["route"], stored["reason"]) == ("none", "recent_purchase"), stored
    # A later moment is stored again, and it counts both events.
    later = _post(client, {"visitor_id": visitor, "events": [event(event_time=_iso(PURCHASE_AT))]})
    assert client.get(f"/v1/visitors/{visitor}", headers=KEY).json()["as_of"] == later["as_of"]
