"""Consent is never overridden: no ``email_remarketing`` for a visitor whose email status is
not ``subscribed``, no ``ad_retargeting`` without ``ads_consent = granted``.

A property test drives the routing step (``route_scored``: features -> routing inputs ->
``route_visitors``, which the batch job calls with columns) and the real-time ``route`` over
random visitors and policies;
the batch job's last check (``check_consent``) is shown to refuse a run whose router went
wrong, leaving the previous run's files and store as they were."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import serving.batch.scored
from features.definitions import FEATURE_COLUMNS
from features.events.schema import ADS_CONSENTS, EMAIL_STATUSES
from serving.batch.job import default_as_of, score_visitors
from serving.batch.outputs import ConsentViolation, check_consent
from serving.model.scoring import route_scored, route_visitors
from serving.policy.routing import ADS, EMAIL, ROUTES, AdBudget, ChannelPolicy, RoutingPolicy, route
from tests.integration.serving.world import World
from tests.integration.serving.world import settings as serving_settings

# Statuses as they arrive, including values outside the known ones (a vendor's typo).
email_statuses = st.sampled_from([*EMAIL_STATUSES, "Subscribed", "", "yes"])
ads_consents = st.sampled_from([*ADS_CONSENTS, "Granted", "", "true"])
policies = st.builds(
    RoutingPolicy,
    email=st.builds(
        ChannelPolicy,
        cost_per_contact=st.floats(0, 2),
        incremental_lift=st.floats(0, 2),
        holdout_share=st.floats(0, 1),
    ),
    ads=st.builds(
        ChannelPolicy,
        cost_per_contact=st.floats(0, 5),
        incremental_lift=st.floats(0, 2),
        holdout_share=st.floats(0, 1),
    ),
    ad_budget=st.builds(
        AdBudget,
        max_audience=st.one_of(st.none(), st.integers(0, 50)),
        max_spend=st.one_of(st.none(), st.floats(0, 100)),
    ),
    min_expected_value=st.floats(-10, 1),
    suppression_days=st.floats(0, 30),
    campaign_salt=st.text(min_size=1, max_size=8),
)


@st.composite
def visitors(draw: st.DrawFn) -> dict[str, np.ndarray]:
    n = draw(st.integers(1, 80))
    features = draw(
        arrays(
            np.float64,
            (n, len(FEATURE_COLUMNS)),
            elements=st.one_of(st.just(np.nan), st.floats(0, 1e4)),
        )
    )
    return {
        "score": draw(arrays(np.float64, n, elements=st.floats(0, 1))),
        "features": features,
        "visitor_id": np.array([f"v{i}" for i in range(n)], dtype=object),
        "email_status": np.array(draw(st.lists(email_statuses, min_size=n, max_size=n)), object),
        "ads_consent": np.array(draw(st.lists(ads_consents, min_size=n, max_size=n)), object),
    }


@settings(max_examples=200, deadline=None)
@given(crowd=visitors(), policy=policies)
def test_the_batch_routing_step_never_contacts_without_consent(
    crowd: dict[str, np.ndarray], policy: RoutingPolicy
) -> None:
    routed = route_scored(
        crowd["score"],
        crowd["features"],
        visitor_id=list(crowd["visitor_id"]),
        email_status=crowd["email_status"],
        ads_consent=crowd["ads_consent"],
        policy=policy,
    )
    assert np.all(crowd["email_status"][routed.route == EMAIL] == "subscribed")
    assert np.all(crowd["ads_consent"][routed.route == ADS] == "granted")
    check_consent(  # the job's own last check agrees
        pl.DataFrame(
            {
                "route": routed.route_names().astype(str),
                "email_status": crowd["email_status"].astype(str),
                "ads_consent": crowd["ads_consent"].astype(str),
            }
        )
    )


@settings(max_examples=300, deadline=None)
@given(
    score=st.floats(0, 1),
    email_status=email_statuses,
    ads_consent=ads_consents,
    days=st.one_of(st.none(), st.floats(0, 60)),
    order_value=st.one_of(st.none(), st.floats(0, 1e4)),
    floor=st.one_of(st.none(), st.floats(-10, 10)),
    policy=policies,
)
def test_the_real_time_route_never_contacts_without_consent(
    score: float,
    email_status: str,
    ads_consent: str,
    days: float | None,
    order_value: float | None,
    floor: float | None,
    policy: RoutingPolicy,
) -> None:
    decision = route(
        "v",
        score,
        email_status=email_status,
        ads_consent=ads_consent,
        days_since_last_purchase=days,
        order_value=order_value,
        policy=policy,
        ads_ev_floor=floor,
    )
    if decision.route == "email_remarketing":
        assert email_status == "subscribed"
    if decision.route == "ad_retargeting":
        assert ads_consent == "granted"


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("wrong", [EMAIL, ADS])
def test_the_batch_job_refuses_an_audience_that_violates_consent(
    shared: World, monkeypatch: pytest.MonkeyPatch, wrong: int
) -> None:
    paths = shared.paths(f"consent-refusal-{ROUTES[wrong]}")
    first = score_visitors(serving_settings(), paths)
    outputs_before = _digest(paths.scoring_dir)
    with sqlite3.connect(paths.sqlite_path) as db:
        store_before = db.execute("SELECT * FROM scores ORDER BY visitor_id").fetchall()

    def broken_router(*args: object, **kwargs: object) -> object:
        routed = route_visitors(*args, **kwargs)  # type: ignore[arg-type]
        return replace(routed, route=np.full_like(routed.route, wrong))  # everyone, consent or not

    monkeypatch.setattr(serving.batch.scored, "route_visitors", broken_router)
    later = default_as_of(shared.lake_dir) + timedelta(days=1)
    with pytest.raises(ConsentViolation, match="refusing to write audiences"):
        score_visitors(serving_settings(), paths, as_of=later)
    monkeypatch.undo()
    assert _digest(paths.scoring_dir) == outputs_before
    with sqlite3.connect(paths.sqlite_path) as db:
        assert db.execute("SELECT * FROM scores ORDER BY visitor_id").fetchall() == store_before
        run = db.execute("SELECT value FROM meta WHERE key = 'run'").fetchone()[0]
    assert first.run_id in str(run)
