"""Budget and threshold curves: the batch routing rules applied at each setting."""

from __future__ import annotations

import numpy as np
import pytest

from serving.policy.curves import (
    budget_curve,
    policy_outcome,
    threshold_curve,
    unconstrained_ad_spend,
)
from serving.policy.routing import RoutingInputs, RoutingPolicy


def _inputs(n: int = 5_000, seed: int = 0) -> RoutingInputs:
    rng = np.random.default_rng(seed)
    return RoutingInputs(
        visitor_id=[f"v{i}" for i in range(n)],
        score=rng.beta(1.2, 6, n),
        email_status=rng.choice(["subscribed", "unknown"], n).astype(object),
        ads_consent=rng.choice(["granted", "denied"], n).astype(object),
        days_since_last_purchase=np.where(rng.random(n) < 0.1, 2.0, np.nan),
        order_value=np.where(rng.random(n) < 0.3, rng.gamma(3, 30, n), np.nan),
    )


def _policy() -> RoutingPolicy:
    return RoutingPolicy.model_validate(
        {"email": {"cost_per_contact": 0.002, "incremental_lift": 0.05, "holdout_share": 0.0,
                   "exploration_share": 0.0},
         "ads": {"cost_per_contact": 0.25, "incremental_lift": 0.3, "holdout_share": 0.0,
                 "exploration_share": 0.0}}
    )  # fmt: skip


def test_more_ad_budget_buys_more_conversions_within_the_budget() -> None:
    curve = budget_curve(_inputs(), _policy(), [0, 10, 50, 100, 200, 400, 10_000])
    assert curve["ads_contacts"][0] == 0
    assert (curve["ads_contacts"] * 0.25 <= curve["ad_budget"] + 1e-9).all()
    assert (curve["incremental_conversions"].diff().drop_nulls() >= -1e-12).all()
    assert curve["ads_contacts"][-1] > curve["ads_contacts"][1] > 0
    # Beyond the point where every worthwhile ad is bought, more budget changes nothing.
    assert curve["cost"][-1] < 10_000


def test_outcome_adds_up_the_contacted_visitors() -> None:
    inputs = _inputs(n=200, seed=1)
    policy = RoutingPolicy.model_validate({**_policy().model_dump(), "ad_budget": {}})
    outcome = policy_outcome(inputs, policy)
    assert outcome["incremental_conversions"] == pytest.approx(
        outcome["email_conversions"] + outcome["ads_conversions"]
    )
    assert outcome["cost"] == pytest.approx(
        outcome["email_contacts"] * 0.002 + outcome["ads_contacts"] * 0.25
    )
    assert outcome["net_value"] == pytest.approx(outcome["incremental_margin"] - outcome["cost"])
    assert outcome["holdout"] == 0


def test_a_higher_threshold_contacts_fewer() -> None:
    curve = threshold_curve(_inputs(), _policy(), [-1.0, 0.0, 0.05, 0.2, 1.0, 100.0])
    contacts = curve["email_contacts"] + curve["ads_contacts"]
    assert (contacts.diff().drop_nulls() <= 0).all()
    assert contacts[-1] == 0 and contacts[0] > 0


def test_no_budget_beyond_the_unconstrained_spend_buys_more() -> None:
    inputs, policy = _inputs(), _policy()
    ceiling = unconstrained_ad_spend(inputs, policy)
    assert ceiling > 0
    curve = budget_curve(inputs, policy, [ceiling / 2, ceiling, ceiling * 3])
    assert curve["cost"][0] < curve["cost"][1] == curve["cost"][2]
    assert curve["ads_contacts"][1] * 0.25 == pytest.approx(ceiling)
