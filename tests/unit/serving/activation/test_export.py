"""Audience exports: golden files per destination, consent re-checked, nothing dropped
silently, raw-email destinations refused by a hashed-only store."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.events.schema import CONTACT_SCHEMA
from features.ingest.identifiers import hash_identifiers, normalise_identifiers
from serving.activation.audience import NO_IDENTIFIER
from serving.activation.export import (
    DESTINATIONS,
    ExportRefused,
    plan_export,
    write_export,
)
from serving.activation.ga4 import limit_violations
from serving.activation.settings import ActivationSettings

GOLDEN = Path(__file__).parents[3] / "fixtures" / "activation"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
ACTIVATION = ActivationSettings()
WHEN = datetime(2025, 1, 1, tzinfo=UTC)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _audience(route: str = "ad_retargeting") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "visitor_id": ["v1", "v2", "v3", "v4"],
            "score": [0.9, 0.8, 0.7, 0.6],
            "decile": [1, 2, 5, 9],
            "expected_value": [3.0, 2.0, 1.0, 0.5],
            "route": [route] * 4,
        }
    )


def _contacts(email: list[str], ads: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "visitor_id": ["v1", "v2", "v3", "v4"],
            "email_status": email,
            "ads_consent": ads,
            "updated_at": [WHEN] * 4,
        },
        schema=CONTACT_SCHEMA,
    )


IDENTIFIERS = normalise_identifiers(
    pl.DataFrame(
        {
            "visitor_id": ["v1", "v2", "v3"],
            "email": [" Jane.Doe@Example.com", None, "sam@example.org"],
            "phone": ["+1 650-555-0100", "+44 7700 900123", None],
            "first_name": ["Jane", "Mary Ann", None],
            "last_name": ["Doe", "O'Brien", None],
            "country": ["US", "GB", None],
            "postal_code": ["94043-1351", "SW1A 1AA", None],
            "ga_client_id": ["111.222", None, "333.444"],
            "user_id": ["u1", None, None],
            "madid": [None, "AAAA-BBBB", None],
        }
    )
)
ALL_CONSENT = _contacts(["subscribed"] * 4, ["granted"] * 4)


def _plan(name: str, contacts: pl.DataFrame = ALL_CONSENT, route: str = "ad_retargeting"):  # type: ignore[no-untyped-def]
    return plan_export(
        DESTINATIONS[name],
        _audience(route),
        contacts=contacts,
        identifiers=IDENTIFIERS,
        run_id="run-1",
        route=route,
        settings=ACTIVATION,
    )


@pytest.mark.parametrize("name", sorted(DESTINATIONS))
def test_each_destination_matches_its_golden_file(name: str, tmp_path: Path) -> None:
    route = "email_remarketing" if DESTINATIONS[name].channel == "email" else "ad_retargeting"
    [written, *_] = write_export(_plan(name, route=route), tmp_path, ACTIVATION)
    golden = GOLDEN / written.name
    if UPDATE:
        golden.write_bytes(written.read_bytes())
    assert written.read_bytes() == golden.read_bytes(), f"rerun with UPDATE_GOLDEN=1 ({name})"


def test_customer_match_hashes_as_google_documents() -> None:
    rows = _plan("customer-match").rows
    assert rows.columns == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    v1 = rows.row(0, named=True)
    assert v1["Email"] == _sha("jane.doe@example.com")  # lower-cased, trimmed
    assert v1["Phone"] == _sha("+16505550100")  # E.164
    assert v1["First Name"] == _sha("jane")
    assert (v1["Country"], v1["Zip"]) == ("US", "94043-1351")  # not hashed


def test_customer_match_sends_an_address_only_whole() -> None:
    rows = _plan("customer-match").rows
    sam = rows.row(2, named=True)  # email only, no name or address
    assert sam["First Name"] is None and sam["Country"] is None


def test_meta_normalises_as_its_business_sdk() -> None:
    rows = _plan("meta").rows
    assert rows.columns == ["EMAIL", "PHONE", "FN", "LN", "COUNTRY", "ZIP", "MADID", "EXTERN_ID"]
    v1, v2 = rows.row(0, named=True), rows.row(1, named=True)
    assert v1["PHONE"] == _sha("16505550100")  # digits only, no "+"
    assert v1["ZIP"] == _sha("94043")  # the part before "-"
    assert v1["COUNTRY"] == _sha("us")
    assert v2["FN"] == _sha("maryann") and v2["LN"] == _sha("obrien")  # letters only
    assert v2["MADID"] == "aaaa-bbbb" and v1["EXTERN_ID"] == "u1"  # not hashed


def test_visitors_without_an_accepted_identifier_are_counted_not_dropped() -> None:
    plan = _plan("customer-match")
    assert plan.summary.exported == 3
    assert plan.summary.left_out[NO_IDENTIFIER] == 1  # v4 has no identifiers at all
    assert plan.visitor_ids.to_list() == ["v1", "v2", "v3"]
    ga4 = _plan("ga4")
    assert ga4.summary.left_out[NO_IDENTIFIER] == 2  # no ga_client_id


def test_consent_withdrawn_after_the_run_is_left_out_and_counted() -> None:
    contacts = _contacts(["subscribed"] * 4, ["granted", "denied", "granted", "granted"])
    plan = _plan("meta", contacts)
    assert plan.summary.left_out["ads_consent_not_granted_now"] == 1
    assert plan.rows.height == 2
    email = _plan("klaviyo", _contacts(["unsubscribed", *["subscribed"] * 3], ["granted"] * 4))
    assert email.summary.left_out["email_not_subscribed_now"] == 1
    assert email.rows.get_column("Email").to_list() == ["sam@example.org"]


def test_email_tools_refuse_a_hashed_only_store() -> None:
    with pytest.raises(ExportRefused, match="store_raw_identifiers=false"):
        plan_export(
            DESTINATIONS["mailchimp"],
            _audience("email_remarketing"),
            contacts=ALL_CONSENT,
            identifiers=hash_identifiers(IDENTIFIERS),
            run_id="r",
            route="email_remarketing",
            settings=ACTIVATION,
        )


def test_ad_platforms_accept_a_hashed_only_store() -> None:
    hashed = plan_export(
        DESTINATIONS["customer-match"],
        _audience(),
        contacts=ALL_CONSENT,
        identifiers=hash_identifiers(IDENTIFIERS),
        run_id="run-1",
        route="ad_retargeting",
        settings=ACTIVATION,
    )
    assert hashed.rows.equals(_plan("customer-match").rows)


def test_ga4_bodies_keep_within_the_measurement_protocol_limits(tmp_path: Path) -> None:
    [path] = write_export(_plan("ga4"), tmp_path, ACTIVATION)
    bodies = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [b["client_id"] for b in bodies] == ["111.222", "333.444"]
    assert bodies[0]["user_id"] == "u1" and "user_id" not in bodies[1]
    assert bodies[0]["user_properties"]["propensity_score_band"] == {"value": "high"}
    assert all(limit_violations(b) == [] for b in bodies)
    assert limit_violations({"client_id": "x", "events": [], "user_properties": {"ga_x": {}}})


def test_meta_files_hold_at_most_the_batch_size(tmp_path: Path) -> None:
    small = ActivationSettings(meta_batch_rows=2)
    paths = write_export(_plan("meta"), tmp_path, small)
    assert [pl.read_csv(p).height for p in paths] == [2, 1]


@settings(max_examples=60, deadline=None)
@given(
    email=st.lists(
        st.sampled_from(["subscribed", "unsubscribed", "pending", "unknown"]),
        min_size=4,
        max_size=4,
    ),
    ads=st.lists(st.sampled_from(["granted", "denied", "unknown"]), min_size=4, max_size=4),
    name=st.sampled_from(sorted(DESTINATIONS)),
    route=st.sampled_from(["email_remarketing", "ad_retargeting"]),
)
def test_no_exported_row_lacks_the_destination_channels_consent(
    email: list[str], ads: list[str], name: str, route: str
) -> None:
    contacts = _contacts(email, ads)
    plan = _plan(name, contacts, route)
    channel = DESTINATIONS[name].channel or ("email" if route == "email_remarketing" else "ads")
    exported = contacts.filter(pl.col("visitor_id").is_in(plan.visitor_ids.implode()))
    column, allowed = (
        ("email_status", "subscribed") if channel == "email" else ("ads_consent", "granted")
    )
    assert (exported.get_column(column) == allowed).all()
    summary = plan.summary
    assert summary.exported + sum(summary.left_out.values()) == summary.audience
