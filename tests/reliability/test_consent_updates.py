"""A partial consent update changes only the fields it names: an omitted (or null) field
stays as stored. Shown for the pure merge over every partial update (hypothesis), and end
to end through ``/v1/events`` and ``/v1/score`` for every stored state and partial update."""

from __future__ import annotations

from typing import get_args

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from serving.api.realtime import Contact
from serving.api.schemas import AdsConsent, EmailStatus
from tests.reliability.conftest import KEY, event

EMAIL = list(get_args(EmailStatus))
ADS = list(get_args(AdsConsent))

#: A field of an update: omitted, null, or a value.
_OMITTED = object()
field_updates = {
    "email_status": st.sampled_from([_OMITTED, None, *EMAIL]),
    "ads_consent": st.sampled_from([_OMITTED, None, *ADS]),
}


@given(
    stored=st.builds(Contact, st.sampled_from(EMAIL), st.sampled_from(ADS)),
    update=st.fixed_dictionaries(field_updates),
)
def test_an_update_changes_exactly_the_fields_it_sets(
    stored: Contact, update: dict[str, object]
) -> None:
    given_fields = {k: v for k, v in update.items() if v is not _OMITTED}
    merged = stored.updated(given_fields)  # type: ignore[arg-type]
    for name in ("email_status", "ads_consent"):
        expected = given_fields.get(name) or getattr(stored, name)
        assert getattr(merged, name) == expected


def _partial_updates() -> list[dict[str, str | None]]:
    """Every update naming at most one field (with a value or null), and the empty one."""
    updates: list[dict[str, str | None]] = [{}]
    updates += [{"email_status": v} for v in [None, *EMAIL]]
    updates += [{"ads_consent": v} for v in [None, *ADS]]
    return updates


@pytest.mark.parametrize(
    "stored_email,stored_ads", [("subscribed", "denied"), ("unsubscribed", "granted")]
)
def test_posted_partial_updates_keep_the_stored_field(
    client: TestClient, stored_email: str, stored_ads: str
) -> None:
    for n, update in enumerate(_partial_updates()):
        visitor = f"consent-{stored_email}-{n}"
        full = {"email_status": stored_email, "ads_consent": stored_ads}
        first = client.post(
            "/v1/events",
            json={"visitor_id": visitor, "events": [event()], "contactability": full},
            headers=KEY,
        )
        assert first.status_code == 200, first.text
        answer = client.post(
            "/v1/events",
            json={"visitor_id": visitor, "events": [event()], "contactability": update},
            headers=KEY,
        )
        assert answer.status_code == 200, answer.text
        expected = {k: update.get(k) or v for k, v in full.items()}
        for body in (
            answer.json()["score"],
            client.get(f"/v1/visitors/{visitor}", headers=KEY).json(),
        ):
            assert {k: body[k] for k in expected} == expected, (update, body)
        scored = client.post(
            "/v1/score",
            json={"visitor_id": visitor, "events": [event()], "contactability": update},
            headers=KEY,
        )
        assert scored.status_code == 200, scored.text
        assert {k: scored.json()[k] for k in expected} == expected, (update, scored.json())
