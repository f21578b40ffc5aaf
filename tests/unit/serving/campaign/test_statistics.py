"""Treated-vs-control statistics against published values and data with a known effect."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from numpy.testing import assert_allclose
from scipy.stats import chi2_contingency

from serving.campaign.runs import intended_channel
from serving.campaign.statistics import (
    compare_means,
    compare_rates,
    measure_experiment,
    rates_frame,
    treatment_flag,
)
from serving.policy.routing import (
    ADS,
    EMAIL,
    HOLDOUT,
    ROUTES,
    RoutingInputs,
    RoutingPolicy,
    route_batch,
)


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 vs 48/80,
    # method 10 (score interval from Wilson limits): 0.0524 to 0.3339.
    result = compare_rates("converted", 56, 70, 48, 80)
    assert result.difference == pytest.approx(0.2)
    assert_allclose([result.difference_low, result.difference_high], [0.0524, 0.3339], atol=5e-5)


@pytest.mark.parametrize(("x1", "n1", "x0", "n0"), [(56, 70, 48, 80), (30, 1000, 12, 990)])
def test_z_test_agrees_with_the_uncorrected_chi_square(x1: int, n1: int, x0: int, n0: int) -> None:
    result = compare_rates("converted", x1, n1, x0, n0)
    table = np.array([[x1, n1 - x1], [x0, n0 - x0]])
    assert result.p_value == pytest.approx(chi2_contingency(table, correction=False).pvalue)


def test_incremental_conversions_scale_the_difference_by_the_treated() -> None:
    result = compare_rates("converted", 300, 10_000, 100, 5_000)
    assert result.incremental == pytest.approx(100.0)
    assert result.incremental_low < 100 < result.incremental_high
    assert result.significant


def _experiment(n: int, control_rate: float, effect: float, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    treated = rng.random(n) < 0.5
    converted = rng.random(n) < control_rate + effect * treated
    revenue = np.where(converted, rng.gamma(2.0, 30.0, n), 0.0)
    return pl.DataFrame({"treated": treated, "converted": converted, "revenue": revenue})


def test_a_known_effect_is_found_and_covered() -> None:
    units = _experiment(200_000, 0.03, 0.01, seed=1)
    (overall,) = measure_experiment(units, treated="treated", rates=["converted"])
    (rate,) = overall.rates
    assert rate.significant and rate.p_value < 1e-6
    assert rate.difference_low < 0.01 < rate.difference_high
    assert rate.difference_high - rate.difference_low < 0.004


def test_no_effect_intervals_cover_zero_at_the_nominal_rate() -> None:
    covered = [
        compare_rates("c", *_counts(_experiment(4_000, 0.05, 0.0, seed))).difference_low
        < 0
        < compare_rates("c", *_counts(_experiment(4_000, 0.05, 0.0, seed))).difference_high
        for seed in range(200)
    ]
    assert 0.91 <= np.mean(covered) <= 0.99


def _counts(units: pl.DataFrame) -> tuple[int, int, int, int]:
    treated = units.filter(pl.col("treated"))
    control = units.filter(~pl.col("treated"))
    return (
        int(treated["converted"].sum()), treated.height,
        int(control["converted"].sum()), control.height,
    )  # fmt: skip


def test_revenue_difference_uses_welch() -> None:
    rng = np.random.default_rng(2)
    treated, control = rng.normal(12.0, 5.0, 5_000), rng.normal(10.0, 1.0, 3_000)
    result = compare_means("revenue", treated, control)
    assert result.difference_low < 2.0 < result.difference_high
    assert result.incremental == pytest.approx(result.difference * 5_000)
    assert result.significant


def test_no_revenue_interval_when_a_group_has_no_spread() -> None:
    result = compare_means("revenue", np.array([0.0, 0.0, 50.0, 80.0]), np.zeros(38))
    assert result.difference == pytest.approx(32.5)
    assert np.isnan(result.difference_low) and np.isnan(result.p_value)
    assert not result.significant


def test_segments_find_the_effect_where_it_is() -> None:
    with_effect = _experiment(60_000, 0.02, 0.02, seed=3).with_columns(segment=pl.lit("a"))
    without = _experiment(60_000, 0.02, 0.0, seed=4).with_columns(segment=pl.lit("b"))
    segments = measure_experiment(
        pl.concat([with_effect, without]), treated="treated", rates=["converted"],
        means=["revenue"], by=["segment"],
    )  # fmt: skip
    by_name = {(s.by, s.segment): s for s in segments}
    assert set(by_name) == {("all", "all"), ("segment", "a"), ("segment", "b")}
    assert by_name["segment", "a"].rates[0].significant
    assert (
        by_name["segment", "b"].rates[0].difference_low
        < 0
        < (by_name["segment", "b"].rates[0].difference_high)
    )
    assert by_name["all", "all"].rates[0].treated == 60_000 + 60_000 - (
        by_name["all", "all"].rates[0].control
    )


def test_treatment_flag_treats_every_non_control_arm() -> None:
    arm = pl.Series(["Mens E-Mail", "No E-Mail", "Womens E-Mail"])
    assert treatment_flag(arm, ["No E-Mail"]).to_list() == [True, False, True]


def test_held_out_visitors_get_back_the_channel_they_were_held_from() -> None:
    rng = np.random.default_rng(5)
    n = 40_000
    inputs = RoutingInputs(
        visitor_id=[f"v{i}" for i in range(n)],
        score=rng.beta(1, 8, n),
        email_status=rng.choice(["subscribed", "unsubscribed"], n).astype(object),
        ads_consent=rng.choice(["granted", "denied"], n).astype(object),
        days_since_last_purchase=np.full(n, np.nan),
        order_value=np.full(n, np.nan),
    )
    # Runs without a channel column predate exploration.
    policy = RoutingPolicy.model_validate(
        {"email": {"cost_per_contact": 0.002, "incremental_lift": 0.05, "holdout_share": 0.2,
                   "exploration_share": 0.0},
         "ads": {"cost_per_contact": 0.25, "incremental_lift": 0.1, "holdout_share": 0.3,
                 "exploration_share": 0.0}}
    )  # fmt: skip
    unheld = policy.model_copy(
        update={
            "email": policy.email.model_copy(update={"holdout_share": 0.0}),
            "ads": policy.ads.model_copy(update={"holdout_share": 0.0}),
        }
    )
    truth = np.asarray(ROUTES)[route_batch(inputs, unheld).route]
    routed = np.asarray(ROUTES)[route_batch(inputs, policy).route]
    scores = pl.DataFrame({"visitor_id": inputs.visitor_id, "route": routed})
    contacts = pl.DataFrame(
        {"visitor_id": inputs.visitor_id, "email_status": inputs.email_status,
         "ads_consent": inputs.ads_consent}
    )  # fmt: skip
    channel = intended_channel(scores, contacts, policy).to_numpy()
    held = routed == ROUTES[HOLDOUT]
    assert {ROUTES[EMAIL], ROUTES[ADS]} <= set(truth[held])
    known = held & (channel != None)  # noqa: E711 (element-wise on an object array)
    assert (channel[known] == truth[known]).all()
    # Unknown only when both draws fall under their shares and both consents are given.
    assert known.sum() >= 0.8 * held.sum()
    assert (channel[~held] == np.where(np.isin(routed, ["none"]), None, routed)[~held]).all()


def test_rates_frame_has_a_row_per_segment_and_outcome() -> None:
    units = _experiment(2_000, 0.1, 0.05, seed=6).with_columns(
        visited=pl.col("converted"), segment=pl.lit("x")
    )
    segments = measure_experiment(
        units, treated="treated", rates=["converted", "visited"], by=["segment"]
    )
    frame = rates_frame(segments)
    assert frame.height == 4
    assert frame.select("by", "segment", "outcome").rows()[:2] == [
        ("all", "all", "converted"), ("all", "all", "visited"),
    ]  # fmt: skip
    assert frame["difference"][0] == segments[0].rates[0].difference
