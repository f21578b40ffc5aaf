"""The routing policy: consent is never overridden, the budget holds, decisions explain
themselves, and the per-visitor path agrees with the batch path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.events.schema import ADS_CONSENTS, EMAIL_STATUSES
from serving.policy.holdout import minimum_detectable_effect
from serving.policy.lift import BandLift, ChannelLift, LiftModel
from serving.policy.routing import (
    ADS,
    BUDGET_EXHAUSTED,
    EMAIL,
    EXPLORATION,
    HOLDOUT,
    ROUTES,
    AdBudget,
    ChannelPolicy,
    RoutingInputs,
    RoutingPolicy,
    budget_spend,
    expected_values,
    route,
    route_batch,
    with_holdout_shares,
)

NAN = float("nan")


def _inputs(rows: list[dict[str, object]]) -> RoutingInputs:
    def column(name: str, default: object) -> list[object]:
        return [row.get(name, default) for row in rows]

    return RoutingInputs(
        visitor_id=[str(v) for v in column("visitor_id", "v")],
        score=np.array(column("score", 0.5), dtype=np.float64),
        email_status=np.array(column("email_status", "subscribed"), dtype=object),
        ads_consent=np.array(column("ads_consent", "granted"), dtype=object),
        days_since_last_purchase=np.array(column("days", NAN), dtype=np.float64),
        order_value=np.array(column("order_value", NAN), dtype=np.float64),
    )


NO_HOLDOUT = RoutingPolicy(
    email=ChannelPolicy(cost_per_contact=0.002, incremental_lift=0.05, holdout_share=0.0),
    ads=ChannelPolicy(cost_per_contact=0.25, incremental_lift=0.10, holdout_share=0.0),
    ad_budget=AdBudget(),
)


def _one(policy: RoutingPolicy = NO_HOLDOUT, **row: object) -> tuple[str, str, float]:
    decided = route_batch(_inputs([{"visitor_id": "v1", **row}]), policy)
    return (
        str(decided.route_names()[0]),
        str(decided.reason_names()[0]),
        float(decided.expected_value[0]),
    )


def test_high_score_with_both_consents_goes_to_the_best_channel() -> None:
    # EV email = 0.9*60*0.3*0.05 - 0.002 = 0.808; ads = 0.9*60*0.3*0.1 - 0.25 = 1.37
    assert _one(score=0.9)[:2] == ("ad_retargeting", "expected_value")
    assert _one(score=0.9)[2] == pytest.approx(0.9 * 60 * 0.3 * 0.1 - 0.25)
    assert _one(score=0.9, ads_consent="denied")[:2] == ("email_remarketing", "expected_value")


def test_reasons() -> None:
    assert _one(email_status="unsubscribed", ads_consent="unknown")[:2] == ("none", "no_consent")
    assert _one(email_status="pending", ads_consent="denied")[1] == "no_consent"
    assert _one(days=2.0)[:2] == ("none", "recent_purchase")
    assert _one(days=20.0)[0] != "none"
    assert _one(score=0.0001)[:2] == ("none", "below_threshold")


def test_order_value_of_the_visitor_beats_the_default() -> None:
    cheap = _one(score=0.2, ads_consent="denied", order_value=1.0)
    default = _one(score=0.2, ads_consent="denied")
    assert cheap[2] < default[2]


def test_budget_goes_to_the_highest_expected_value_first() -> None:
    policy = NO_HOLDOUT.model_copy(update={"ad_budget": AdBudget(max_audience=2)})
    rows = [
        {"visitor_id": f"v{i}", "score": s, "email_status": "unsubscribed"}
        for i, s in enumerate([0.5, 0.9, 0.7, 0.95])
    ]
    decided = route_batch(_inputs(rows), policy)
    assert list(decided.route_names()) == ["none", "ad_retargeting", "none", "ad_retargeting"]
    assert decided.reason_names()[0] == "budget_exhausted"
    assert decided.ads_ev_floor == pytest.approx(decided.expected_value[1])


def test_the_budget_buys_the_ads_that_add_most_over_the_email_fallback() -> None:
    """A subscriber an email serves nearly as well does not take the one ad an anonymous
    visitor needs: ads EV 1.37 over email 0.81 adds 0.56; the other ad adds its whole 0.83."""
    policy = NO_HOLDOUT.model_copy(update={"ad_budget": AdBudget(max_audience=1)})
    rows = [
        {"visitor_id": "subscriber", "score": 0.9},
        {"visitor_id": "anonymous", "score": 0.6, "email_status": "unsubscribed"},
    ]
    decided = route_batch(_inputs(rows), policy)
    assert list(decided.route_names()) == ["email_remarketing", "ad_retargeting"]
    assert decided.ads_ev_floor == pytest.approx(0.6 * 60 * 0.3 * 0.1 - 0.25)


QUIET = NO_HOLDOUT.model_copy(
    update={
        name: getattr(NO_HOLDOUT, name).model_copy(update={"exploration_share": 0.0})
        for name in ("email", "ads")
    }
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "score": st.floats(0, 1),
                "email_status": st.sampled_from(["subscribed", "unsubscribed"]),
                "order_value": st.one_of(st.just(NAN), st.floats(1, 500)),
            }
        ),
        min_size=1,
        max_size=7,
    ),
    slots=st.integers(0, 4),
)
def test_the_budget_allocation_is_the_best_one(rows: list[dict[str, object]], slots: int) -> None:
    """No way of spending the ad budget's slots, all of them tried, earns more expected
    value than the routing's, each visitor not given an ad falling back to email where
    email is worth it."""
    from itertools import combinations

    rows = [{"visitor_id": f"v{i}", **row} for i, row in enumerate(rows)]
    inputs = _inputs(rows)
    policy = QUIET.model_copy(update={"ad_budget": AdBudget(max_audience=slots)})
    decided = route_batch(inputs, policy)
    email_ev, ads_ev = expected_values(inputs, policy)
    email_worth = (inputs.email_status == "subscribed") & (email_ev > 0)
    fallback = np.where(email_worth, email_ev, 0.0)

    def earned(ads: np.ndarray) -> float:
        return float(np.where(ads, ads_ev, fallback).sum())

    got = earned(decided.route == ADS)
    assert np.array_equal(decided.route == EMAIL, email_worth & (decided.route != ADS))
    best = max(
        earned(np.isin(np.arange(len(rows)), chosen))
        for k in range(min(slots, len(rows)) + 1)
        for chosen in combinations(range(len(rows)), k)
    )
    assert got == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_budget_miss_falls_back_to_email() -> None:
    policy = NO_HOLDOUT.model_copy(update={"ad_budget": AdBudget(max_spend=0.25)})
    rows = [{"visitor_id": "a", "score": 0.9}, {"visitor_id": "b", "score": 0.8}]
    decided = route_batch(_inputs(rows), policy)
    assert list(decided.route_names()) == ["ad_retargeting", "email_remarketing"]


def test_holdout_is_deterministic_and_near_its_share() -> None:
    policy = NO_HOLDOUT.model_copy(
        update={
            "email": ChannelPolicy(cost_per_contact=0.0, incremental_lift=0.05, holdout_share=0.2)
        }
    )
    rows = [
        {"visitor_id": f"visitor-{i}", "score": 0.3, "ads_consent": "denied"} for i in range(4000)
    ]
    first = route_batch(_inputs(rows), policy)
    again = route_batch(_inputs(rows), policy)
    np.testing.assert_array_equal(first.route, again.route)
    share = float(np.mean(first.route == HOLDOUT))
    assert 0.17 < share < 0.23
    assert set(first.reason_names()[first.route == HOLDOUT]) == {"holdout"}
    resalted = route_batch(_inputs(rows), policy.model_copy(update={"campaign_salt": "other"}))
    assert not np.array_equal(first.route, resalted.route)


def test_single_visitor_route_is_the_batch_route_of_one_row() -> None:
    decision = route(
        "v1",
        0.9,
        email_status="subscribed",
        ads_consent="granted",
        days_since_last_purchase=None,
        order_value=None,
        policy=NO_HOLDOUT,
    )
    assert (decision.route, decision.reason) == _one(score=0.9)[:2]
    floored = route(
        "v1",
        0.9,
        email_status="subscribed",
        ads_consent="granted",
        days_since_last_purchase=None,
        order_value=None,
        policy=NO_HOLDOUT,
        ads_ev_floor=100.0,
    )
    assert floored.route == "email_remarketing"


visitor_rows = st.lists(
    st.fixed_dictionaries(
        {
            "visitor_id": st.text(min_size=1, max_size=12),
            "score": st.floats(0, 1),
            "email_status": st.sampled_from(EMAIL_STATUSES),
            "ads_consent": st.sampled_from(ADS_CONSENTS),
            "days": st.one_of(st.just(NAN), st.floats(0, 30)),
            "order_value": st.one_of(st.just(NAN), st.floats(0, 1000)),
        }
    ),
    max_size=60,
)
policies = st.builds(
    RoutingPolicy,
    email=st.builds(
        ChannelPolicy,
        cost_per_contact=st.floats(0, 1),
        incremental_lift=st.floats(0, 1),
        holdout_share=st.floats(0, 1),
        exploration_share=st.floats(0, 0.25),
    ),
    ads=st.builds(
        ChannelPolicy,
        cost_per_contact=st.one_of(st.none(), st.floats(0, 5)),
        cpm=st.floats(0, 50),
        impressions_per_contact=st.floats(0.5, 20),
        incremental_lift=st.floats(0, 1),
        holdout_share=st.floats(0, 1),
        min_detectable_effect=st.one_of(st.none(), st.floats(0.001, 0.2)),
        exploration_share=st.floats(0, 0.25),
    ),
    ad_budget=st.builds(
        AdBudget,
        max_audience=st.one_of(st.none(), st.integers(0, 30)),
        max_spend=st.one_of(st.none(), st.floats(0, 50)),
    ),
    min_expected_value=st.floats(-1, 1),
)


@settings(max_examples=150, deadline=None)
@given(rows=visitor_rows, policy=policies)
def test_consent_and_budget_are_never_violated(
    rows: list[dict[str, object]], policy: RoutingPolicy
) -> None:
    inputs = _inputs(rows)
    decided = route_batch(inputs, policy)
    emailed = decided.route == EMAIL
    advertised = decided.route == ADS
    assert np.all(inputs.email_status[emailed] == "subscribed")
    assert np.all(inputs.ads_consent[advertised] == "granted")
    budget = policy.ad_budget
    if budget.max_audience is not None:
        assert advertised.sum() <= budget.max_audience
    if budget.max_spend is not None:
        assert budget_spend(decided, policy) <= budget.max_spend + 1e-9
    contacted = emailed | advertised | (decided.route == HOLDOUT)
    assert not np.any(contacted & (inputs.days_since_last_purchase < policy.suppression_days))
    explored = decided.reason == EXPLORATION
    assert np.all(decided.expected_value[contacted & ~explored] > policy.min_expected_value)
    # Exploration reaches only visitors no channel is worth it for, on a channel they allow,
    # and by email the ones an ad was worth it for but the budget ran out before.
    email_ev, ads_ev = expected_values(inputs, policy)
    email_worth = (inputs.email_status == "subscribed") & (email_ev > policy.min_expected_value)
    ads_worth = (inputs.ads_consent == "granted") & (ads_ev > policy.min_expected_value)
    assert decided.channel is not None
    assert not np.any(explored & email_worth)
    assert not np.any(explored & ads_worth & (decided.channel != EMAIL))
    assert np.all(np.isin(decided.channel[explored], [EMAIL, ADS]))


@settings(max_examples=80, deadline=None)
@given(rows=visitor_rows, policy=policies)
def test_batch_of_one_equals_the_visitor_route(
    rows: list[dict[str, object]], policy: RoutingPolicy
) -> None:
    unlimited = policy.model_copy(update={"ad_budget": AdBudget()})
    decided = route_batch(_inputs(rows), unlimited)
    for i, row in enumerate(rows):
        days, value = float(row["days"]), float(row["order_value"])  # type: ignore[arg-type]
        one = route(
            str(row["visitor_id"]),
            float(row["score"]),  # type: ignore[arg-type]
            email_status=str(row["email_status"]),
            ads_consent=str(row["ads_consent"]),
            days_since_last_purchase=None if np.isnan(days) else days,
            order_value=None if np.isnan(value) else value,
            policy=unlimited,
        )
        assert one.route == decided.route_names()[i]
        assert one.reason == decided.reason_names()[i]
        np.testing.assert_allclose(one.expected_value, decided.expected_value[i])


def _crowd(n: int, seed: int = 0) -> RoutingInputs:
    rng = np.random.default_rng(seed)
    return RoutingInputs(
        visitor_id=[f"v{i}" for i in range(n)],
        score=rng.uniform(0, 0.2, n),
        email_status=rng.choice(["subscribed", "unsubscribed"], n).astype(object),
        ads_consent=rng.choice(["granted", "denied"], n).astype(object),
        days_since_last_purchase=np.full(n, np.nan),
        order_value=np.full(n, np.nan),
    )


def test_exploration_sends_and_holds_out_a_share_where_no_channel_pays() -> None:
    inputs = _crowd(40_000)
    policy = RoutingPolicy.model_validate(
        {"email": {"cost_per_contact": 0.002, "incremental_lift": 0.05, "exploration_share": 0.05},
         "ads": {"cpm": 2.0, "impressions_per_contact": 10, "incremental_lift": 0.1,
                 "exploration_share": 0.05},
         "ad_budget": {}}
    )  # fmt: skip
    decided = route_batch(inputs, policy)
    _, ads_ev = expected_values(inputs, policy)
    # Ads pay only above p = 0.02 / (0.1 × 18): below it, ads are explored, not used.
    nowhere = (
        (inputs.email_status != "subscribed") & (ads_ev <= 0) & (inputs.ads_consent == "granted")
    )
    explored = decided.reason == EXPLORATION
    assert decided.channel is not None
    sent = explored & nowhere & (decided.route == ADS)
    held = explored & nowhere & (decided.route == HOLDOUT) & (decided.channel == ADS)
    assert sent.sum() == pytest.approx(0.05 * nowhere.sum(), rel=0.15)
    assert held.sum() == pytest.approx(sent.sum(), rel=0.15)
    # Exploration covers the low scores the policy never contacts.
    assert inputs.score[sent].max() < 0.02 / (0.1 * 18)
    # The same visitors are explored on every run.
    again = route_batch(inputs, policy)
    assert np.array_equal(again.route, decided.route)


def test_explored_ads_are_paid_from_the_budget() -> None:
    inputs = _crowd(20_000, seed=3)
    policy = RoutingPolicy.model_validate(
        {"ads": {"cpm": 2.0, "impressions_per_contact": 10, "incremental_lift": 1.0,
                 "exploration_share": 0.1},
         "ad_budget": {"max_spend": 10.0}}
    )  # fmt: skip
    decided = route_batch(inputs, policy)
    assert budget_spend(decided, policy) <= 10.0 + 1e-9
    assert np.count_nonzero((decided.route == ADS) & (decided.reason == EXPLORATION)) > 0


def test_an_ad_reach_costs_cpm_times_impressions() -> None:
    ads = ChannelPolicy(cpm=2.5, impressions_per_contact=8, incremental_lift=0.1)
    assert ads.unit_cost == pytest.approx(0.02)
    assert ads.model_copy(update={"cost_per_contact": 0.3}).unit_cost == 0.3
    with pytest.raises(ValueError, match="cost_per_contact or cpm"):
        ChannelPolicy(incremental_lift=0.1)


def test_a_detectable_effect_sizes_the_holdout() -> None:
    inputs = _crowd(40_000, seed=5)
    fixed = RoutingPolicy()
    sized = RoutingPolicy.model_validate(
        {"email": {**fixed.email.model_dump(), "min_detectable_effect": 0.02}}
    )
    share = route_batch(inputs, sized).holdout_shares
    assert share is not None and route_batch(inputs, fixed).holdout_shares == {
        "email": 0.05,
        "ads": 0.05,
    }
    decided = route_batch(inputs, sized)
    emailed = (decided.channel == EMAIL) & (decided.reason != EXPLORATION)
    n, baseline = int(emailed.sum()), float(inputs.score[emailed].mean())
    held = round(share["email"] * n)
    assert 0 < share["email"] < 0.5
    assert minimum_detectable_effect(baseline, n - held, held) == pytest.approx(0.02, rel=0.02)
    # Held out as sized: the draw under the share.
    assert np.count_nonzero(emailed & (decided.route == HOLDOUT)) == pytest.approx(held, rel=0.1)


def _email_lift(delta: float, high: float) -> LiftModel:
    band = BandLift(0.0, 1.0, delta, delta - 0.01, high, 500, 500, delta, 0.0)
    return LiftModel("lifttest", {"email": ChannelLift((band,))})


def test_exploration_looks_harder_where_the_lift_may_be_wrong() -> None:
    """A channel measured just below break-even, with an interval reaching above it, is
    explored at the uncertain share; one measured clearly worthless, at the base share."""
    inputs = _crowd(40_000, seed=11)
    policy = RoutingPolicy.model_validate({"ads": {"cpm": 1000.0, "incremental_lift": 0.0}})
    subscribed = inputs.email_status == "subscribed"
    for high, share in ((0.01, policy.email.uncertain_exploration_share),
                        (-0.001, policy.email.exploration_share)):  # fmt: skip
        decided = route_batch(inputs, policy, lift=_email_lift(-0.002, high))
        sent = (decided.route == EMAIL) & (decided.reason == EXPLORATION)
        assert not np.any((decided.route == EMAIL) & (decided.reason != EXPLORATION))
        assert sent.sum() == pytest.approx(share * subscribed.sum(), rel=0.15)


def test_the_real_time_route_holds_out_as_the_sized_batch_did() -> None:
    """A detectable effect sizes the holdout for a run's audience; one visitor alone has no
    audience, so the real-time path routes with the run's recorded shares."""
    inputs = _crowd(3_000, seed=13)
    policy = RoutingPolicy.model_validate(
        {"email": {**RoutingPolicy().email.model_dump(), "min_detectable_effect": 0.08}}
    )
    batch = route_batch(inputs, policy)
    assert batch.holdout_shares is not None and 0.05 < batch.holdout_shares["email"] < 0.5
    fixed = with_holdout_shares(policy, batch.holdout_shares)
    for i in range(0, 3_000, 7):
        one = route(
            inputs.visitor_id[i], float(inputs.score[i]),
            email_status=str(inputs.email_status[i]), ads_consent=str(inputs.ads_consent[i]),
            days_since_last_purchase=None, order_value=None, policy=fixed,
            ads_ev_floor=batch.ads_ev_floor,
        )  # fmt: skip
        assert one.route == ROUTES[int(batch.route[i])]


def test_email_is_explored_where_the_ad_budget_ran_out() -> None:
    """Visitors ads would pay for but the budget does not reach, with email not worth it,
    are contacted by nobody: email is explored among them as among the visitors no channel
    pays for, so a wrong email lift there is found out."""
    inputs = _crowd(40_000, seed=17)
    policy = RoutingPolicy.model_validate(
        {"email": {"cost_per_contact": 0.002, "incremental_lift": 0.05,
                   "uncertain_exploration_share": 0.3},
         "ads": {"cpm": 2.0, "impressions_per_contact": 1, "incremental_lift": 0.5,
                 "exploration_share": 0.0},
         "ad_budget": {"max_audience": 500}}
    )  # fmt: skip
    lift = _email_lift(-0.002, 0.01)  # email below break-even, plausibly above it
    decided = route_batch(inputs, policy, lift=lift)
    _, ads_ev = expected_values(inputs, policy, lift)
    exhausted = (
        (inputs.ads_consent == "granted") & (inputs.email_status == "subscribed") & (ads_ev > 0)
    ) & (decided.channel != ADS)
    assert exhausted.sum() > 1_000
    explored = exhausted & (decided.reason == EXPLORATION) & (decided.channel == EMAIL)
    sent = explored & (decided.route == EMAIL)
    assert sent.sum() == pytest.approx(0.3 * exhausted.sum(), rel=0.15)
    assert (explored & (decided.route == HOLDOUT)).sum() == pytest.approx(sent.sum(), rel=0.15)
    # The rest of them are still told the budget ran out.
    assert np.all(decided.reason[exhausted & ~explored] == BUDGET_EXHAUSTED)
