"""Learning a channel's lift from treated and held-out visitors, by score band."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from features.simulation import SimulationConfig, simulate
from features.simulation.generator import world
from features.simulation.response import campaign_outcome
from serving.campaign.lift import (
    LiftSettings,
    fit_lift,
    gate_lift,
    lift_by_key,
    ranked_by_uplift,
)
from serving.policy.lift import LiftModel, incremental_probability
from serving.policy.routing import RoutingPolicy

POLICY = RoutingPolicy()


def _units(
    n: int, effect: float, seed: int = 0, channel: str = "email_remarketing"
) -> pl.DataFrame:
    """Visitors with scores in (0, 0.1), half treated; treated buy with score + ``effect``."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0, 0.1, n)
    treated = rng.random(n) < 0.5
    converted = rng.random(n) < score + np.where(treated, effect, 0.0)
    return pl.DataFrame(
        {"channel": channel, "treated": treated, "score": score, "converted": converted.astype(int)}
    )


def test_a_large_holdout_measures_the_effect() -> None:
    model = fit_lift(_units(400_000, 0.02), POLICY, LiftSettings(bands=4))
    bands = model.channels["email"].bands
    assert len(bands) == 4 and "ads" not in model.channels
    for band in bands:
        assert band.low <= 0.02 <= band.high
        assert band.delta == pytest.approx(0.02, abs=0.004)
        # The prior is the channel's measured level, not the bare assumption (under 0.01).
        assert band.observed is not None and band.prior == pytest.approx(0.02, abs=0.004)


def test_a_small_holdout_stays_near_the_assumption() -> None:
    settings = LiftSettings(bands=4, min_control_per_band=100)
    model = fit_lift(_units(300, 0.05, seed=1), POLICY, settings)
    (band,) = model.channels["email"].bands  # about 150 held out: one band
    assert band.control < 2 * settings.min_control_per_band
    assert abs(band.delta - band.prior) < abs(band.observed - band.prior)  # type: ignore[operator]


def test_without_a_holdout_the_assumption_is_the_answer() -> None:
    treated_only = _units(1_000, 0.05).with_columns(pl.lit(True).alias("treated"))
    (band,) = fit_lift(treated_only, POLICY, LiftSettings()).channels["email"].bands
    assert band.control == 0 and band.observed is None and band.delta == band.prior


def test_a_fit_reads_back_as_written_and_names_its_content() -> None:
    units = _units(20_000, 0.01)
    model = fit_lift(units, POLICY, LiftSettings(), runs=["r1"])
    assert LiftModel.from_dict(model.to_dict()) == model
    assert fit_lift(units, POLICY, LiftSettings(), runs=["r1"]).fit_id == model.fit_id
    assert fit_lift(units, POLICY, LiftSettings(), runs=["r2"]).fit_id != model.fit_id
    scores = np.array([0.0, 0.05, 0.099, 0.5])
    at = model.channels["email"].at(scores)
    assert at.shape == (4,) and np.isfinite(at).all()


def test_the_learned_lift_converges_to_the_simulators_truth() -> None:
    """On a large simulated shop, half of the active subscribers emailed at random: each
    band's learned effect holds the true mean effect of its treated visitors."""
    config = SimulationConfig(visitors=150_000, days=80, seed=9)
    shop, data = world(config), simulate(config)
    as_of = config.start + timedelta(days=50)
    horizon = timedelta(days=14)
    subscribed = data.contacts.filter(pl.col("email_status") == "subscribed").select("visitor_id")
    active = (
        data.events.filter(
            (pl.col("event_time") < as_of) & (pl.col("event_time") >= as_of - timedelta(days=30))
        )
        .select("visitor_id")
        .unique()
        .join(subscribed, on="visitor_id")
        .sort("visitor_id")
    )
    emailed = active.filter(pl.Series(np.random.default_rng(3).random(active.height) < 0.5))
    outcome = campaign_outcome(
        config,
        shop,
        data,
        emailed.with_columns(pl.lit("email").alias("channel")),
        as_of,
        horizon,
        reveal_from=as_of,
    )
    bought = outcome.events.filter(
        (pl.col("event_name") == "purchase") & (pl.col("event_time") > as_of)
    )["visitor_id"]
    units = active.join(outcome.effects, on="visitor_id").select(
        pl.lit("email_remarketing").alias("channel"),
        pl.col("channel").is_not_null().alias("treated"),
        pl.col("p_control").alias("score"),
        pl.col("visitor_id").is_in(bought.implode()).cast(pl.Int64).alias("converted"),
        "delta_email",
    )
    model = fit_lift(units, POLICY, LiftSettings(bands=3, min_control_per_band=1_000))
    lift = model.channels["email"]
    band = np.searchsorted([b.lo for b in lift.bands[1:]], units["score"].to_numpy(), "right")
    truth = units.with_columns(pl.Series("band", band)).filter(pl.col("treated"))
    true_means = truth.group_by("band").agg(pl.col("delta_email").mean()).sort("band")
    assert len(lift.bands) >= 2  # a third of them have left (score 0): one band, not two
    for (_, true_mean), learned in zip(true_means.iter_rows(), lift.bands, strict=True):
        assert learned.low <= true_mean <= learned.high
        assert learned.observed is not None and learned.high - learned.low < 0.03


def test_explored_and_routed_visitors_are_compared_within_their_own_group() -> None:
    """Routed visitors (95% treated) buy more than explored ones (50% treated) whatever the
    contact; pooling the groups would credit the contact with the difference."""
    rng = np.random.default_rng(7)
    frames = []
    for explored, share, base in ((False, 0.95, 0.08), (True, 0.5, 0.02)):
        n = 200_000
        treated = rng.random(n) < share
        converted = rng.random(n) < base + np.where(treated, 0.01, 0.0)
        frames.append(
            pl.DataFrame(
                {"channel": "email_remarketing", "treated": treated,
                 "score": rng.uniform(0.04, 0.05, n), "converted": converted.astype(int),
                 "explored": explored}
            )
        )  # fmt: skip
    units = pl.concat(frames)
    (band,) = fit_lift(units, POLICY, LiftSettings(bands=1)).channels["email"].bands
    assert band.low <= 0.01 <= band.high
    (pooled,) = (
        fit_lift(units.drop("explored"), POLICY, LiftSettings(bands=1)).channels["email"].bands
    )
    assert pooled.observed is not None and pooled.observed > 0.03


def _runs(*effects: float) -> pl.DataFrame:
    return pl.concat(
        _units(60_000, effect, seed=i).with_columns(pl.lit(f"r{i}").alias("run_id"))
        for i, effect in enumerate(effects)
    )


def test_the_lift_gate_promotes_a_refit_that_predicts_the_newest_run_better() -> None:
    units = _runs(0.02, 0.02)
    first = gate_lift(units, None, POLICY, LiftSettings())
    assert first.promoted and first.reason == "first fit"
    wrong = fit_lift(_runs(-0.03), POLICY, LiftSettings())
    gate = gate_lift(units, wrong, POLICY, LiftSettings())
    assert gate.promoted and gate.newest_run == "r1"
    assert gate.candidate_error is not None and gate.live_error is not None
    assert gate.candidate_error < gate.live_error


def test_the_lift_gate_keeps_a_live_fit_the_refit_cannot_beat() -> None:
    # The effect changed in the newest run; the live fit already knows it, a refit without
    # the newest run does not.
    units = _runs(0.0, 0.03)
    live = fit_lift(units.filter(pl.col("run_id") == "r1"), POLICY, LiftSettings())
    gate = gate_lift(units, live, POLICY, LiftSettings())
    assert not gate.promoted and "does not predict r1" in gate.reason
    assert gate_lift(units.clear(), live, POLICY, LiftSettings()).reason.startswith("no run")


def test_a_channel_ranked_by_an_uplift_prediction_measures_its_bands_on_the_holdout() -> None:
    """The effect grows with a key the score does not see: by score band the lift is flat,
    by band of the key it finds the gradient; the ranked fit reads back and has its own id."""
    rng = np.random.default_rng(40)
    n = 200_000
    units = _units(n, 0.0, seed=4)
    key = rng.uniform(-0.02, 0.04, n)
    treated = units.get_column("treated").to_numpy()
    converted = rng.random(n) < units.get_column("score").to_numpy() + np.where(
        treated, np.clip(key, 0, None), 0.0
    )
    units = units.with_columns(
        pl.Series("converted", converted.astype(int)), pl.Series("uplift", key)
    )
    settings = LiftSettings(bands=4)
    by_score = fit_lift(units, POLICY, settings)
    by_key = lift_by_key(units, "email", "uplift", POLICY, settings)
    score_deltas = [band.delta for band in by_score.channels["email"].bands]
    key_deltas = [band.delta for band in by_key.bands]
    assert max(score_deltas) - min(score_deltas) < 0.006
    assert key_deltas == sorted(key_deltas) and key_deltas[-1] - key_deltas[0] > 0.02
    assert by_key.bands[0].lo < 0  # predictions below zero have a band
    # The same level as by score (there, without the proportional shape); the score's flat
    # gradient is found flat.
    flat = fit_lift(units, POLICY, LiftSettings(bands=4, proportional_prior=0.0))
    assert by_key.bands[0].prior == pytest.approx(flat.channels["email"].bands[0].prior)
    assert (by_score.channels["email"].proportional or 1.0) < 0.05
    ranked = ranked_by_uplift(by_score, {"email": replace(by_key, uplift_model="models:/u/1")})
    assert ranked.fit_id != by_score.fit_id
    assert LiftModel.from_dict(ranked.to_dict()) == ranked
    assert ranked.uplift_models() == {"email": "models:/u/1"}
    high = np.array([0.039])
    assert incremental_probability([0.05], "email", 0.05, ranked, high)[0] == pytest.approx(
        key_deltas[-1]
    )
    # Without a prediction the visitor is valued by score band.
    assert incremental_probability([0.05], "email", 0.05, ranked)[0] == pytest.approx(
        by_score.channels["email"].at([0.05])[0]
    )


def _graded_units(n: int, slope: float, level: float, seed: int) -> pl.DataFrame:
    """Treated buy with score + ``level + slope × (score − 0.05)``: flat when slope is 0,
    proportional to the score when ``level = 0.05 × slope``."""
    units = _units(n, 0.0, seed=seed)
    rng = np.random.default_rng(seed + 100)
    score, treated = units["score"].to_numpy(), units["treated"].to_numpy()
    effect = np.where(treated, level + slope * (score - 0.05), 0.0)
    return units.with_columns(pl.Series("converted", (rng.random(n) < score + effect).astype(int)))


@pytest.mark.parametrize(
    ("slope", "level", "expected"),
    [(0.0, 0.02, (0.0, 0.05)), (0.4, 0.02, (0.95, 1.0))],
    ids=["flat", "proportional"],
)
def test_a_large_holdout_settles_the_shape_of_the_effect(
    slope: float, level: float, expected: tuple[float, float]
) -> None:
    """Issue 18: the bands' measurements weigh a flat effect against one proportional to the
    score; a large holdout tells them apart, and the curve follows the one it finds."""
    lift = fit_lift(_graded_units(400_000, slope, level, seed=5), POLICY, LiftSettings(bands=5))
    email = lift.channels["email"]
    assert email.proportional is not None
    assert expected[0] <= email.proportional <= expected[1]
    truth = level + slope * (np.array([0.01, 0.03, 0.05, 0.07, 0.09]) - 0.05)
    assert np.abs(email.at([0.01, 0.03, 0.05, 0.07, 0.09]) - truth).max() < 0.006


def test_a_small_holdout_ranks_by_score_as_far_as_the_prior_believes_it() -> None:
    """One band (about 150 held out): nothing measured tells the shapes apart, so the prior
    belief stays and, within the band, Δp rises with the score by its share of the
    proportional slope, up to a high percentile of the band's scores and flat past it;
    across the band's visitors it averages to the band's effect. A believer in flat effects
    (``proportional_prior=0``) values every score alike."""
    units = _units(300, 0.05, seed=1)
    (band,) = (email := fit_lift(units, POLICY, LiftSettings()).channels["email"]).bands
    assert email.proportional == pytest.approx(0.5)
    scores = np.array([0.0, 0.02, 0.05, 0.08, 0.099, 0.5])
    at = email.at(scores)
    assert band.score_high is not None and 0.08 < band.score_high < 0.099
    assert (np.diff(at[:4]) > 0).all() and at[4] == at[5] == email.at([band.score_high])[0]
    assert email.at(units["score"].to_numpy()).mean() == pytest.approx(band.delta, rel=0.05)
    assert (email.upper(scores) > at).all()
    flat = fit_lift(units, POLICY, LiftSettings(proportional_prior=0.0)).channels["email"]
    assert np.ptp(flat.at(scores)) == 0.0
    # A fit written before shapes reads back flat within its bands.
    written = fit_lift(units, POLICY, LiftSettings()).to_dict()
    for lift in written["channels"].values():
        lift.pop("proportional")
        for old in lift["bands"]:
            for name in ("score_mean", "score_high", "slope"):
                old.pop(name)
    assert np.ptp(LiftModel.from_dict(written).channels["email"].at(scores)) == 0.0
