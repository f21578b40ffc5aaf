"""Campaign response in the simulator: the true effects, and simulated rounds that show them."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from features.simulation import SimulationConfig, simulate
from features.simulation.generator import SimulatedData, World, world
from features.simulation.response import campaign_outcome, sleeping_dogs, true_effects
from features.simulation.truth import _micros

HORIZON = timedelta(days=14)


def _shop(
    visitors: int, seed: int = 11, **changes: float
) -> tuple[SimulationConfig, World, SimulatedData]:
    config = SimulationConfig(visitors=visitors, days=80, seed=seed, **changes)
    return config, world(config), simulate(config)


@pytest.fixture(scope="module")
def shop() -> tuple[SimulationConfig, World, SimulatedData]:
    return _shop(8_000)


def _active(data: SimulatedData, as_of: datetime) -> pl.DataFrame:
    """``visitor_id`` of the visitors with events in the 30 days before ``as_of``."""
    recent = (pl.col("event_time") < as_of) & (pl.col("event_time") >= as_of - timedelta(days=30))
    return data.events.filter(recent).select("visitor_id").unique().sort("visitor_id")


def _as_of(config: SimulationConfig) -> datetime:
    return config.start + timedelta(days=50, hours=7)


def test_effects_by_kind_of_visitor(shop: tuple[SimulationConfig, World, SimulatedData]) -> None:
    config, world_, data = shop
    as_of = _as_of(config)
    effects = true_effects(config, world_, data.truth, data.events, as_of, HORIZON)
    assert effects.height == config.visitors
    p0 = effects["p_control"].to_numpy()
    t_us = _micros(as_of)
    alive = (world_.visitors.alive_from <= t_us) & (t_us < world_.visitors.churn)
    for channel in ("email", "ads"):
        delta = effects[f"delta_{channel}"].to_numpy()
        dog = effects[f"sleeping_dog_{channel}"].to_numpy()
        np.testing.assert_allclose(delta[dog], -p0[dog])  # put off: no purchase at all
        assert np.all(delta[~dog & ~alive] == 0)  # a churned visitor is a lost cause
        assert np.all((delta[~dog] >= 0) & (delta[~dog] <= 1 - p0[~dog]))
        assert 0.005 < dog.mean() < 0.04  # about sleeping_dog_share (0.02)
    # Email works on more visitors than an ad reach does, and the effect is not the base rate
    # scaled: among the responsive it barely moves between low and high propensity.
    responsive = (effects["delta_email"] > 0).to_numpy()
    assert effects["delta_email"].mean() > effects["delta_ads"].mean() > 0
    low, high = np.quantile(p0[responsive], [0.25, 0.75])
    ratio = (
        effects["delta_email"].to_numpy()[responsive & (p0 >= high)].mean()
        / effects["delta_email"].to_numpy()[responsive & (p0 <= low)].mean()
    )
    assert ratio < (high / max(low, 1e-9)) / 3


def test_a_round_shows_the_true_effect_on_a_large_shop() -> None:
    """Half of the active visitors emailed at random: the purchase rate in the window of the
    emailed minus that of the others is the mean true effect, within sampling error."""
    config, world_, data = _shop(120_000, seed=5)
    as_of = _as_of(config)
    active = _active(data, as_of)
    emailed = active.filter(pl.Series(np.random.default_rng(0).random(active.height) < 0.5))
    contacted = emailed.with_columns(pl.lit("email").alias("channel"))
    outcome = campaign_outcome(
        config,
        world_,
        data,
        contacted,
        as_of,
        HORIZON,
        reveal_from=as_of,
    )
    bought = (
        outcome.events.filter((pl.col("event_name") == "purchase") & (pl.col("event_time") > as_of))
        .select("visitor_id")
        .unique()
    )
    units = active.join(outcome.effects, on="visitor_id").with_columns(
        pl.col("visitor_id").is_in(bought["visitor_id"].implode()).cast(pl.Float64).alias("y"),
        pl.col("channel").is_not_null().alias("treated"),
    )
    treated, control = units.filter(pl.col("treated")), units.filter(~pl.col("treated"))
    observed = treated["y"].mean() - control["y"].mean()  # type: ignore[operator]
    error = (treated["y"].var() / treated.height + control["y"].var() / control.height) ** 0.5  # type: ignore[operator]
    expected = treated["delta_email"].mean()
    assert expected > 3 * error  # the effect is there to find
    assert abs(observed - expected) < 4 * error  # type: ignore[operator]


def test_a_round_changes_only_the_contacted() -> None:
    # Many sleeping dogs, so that some of them would have bought in the window.
    config, world_, data = _shop(8_000, sleeping_dog_share=0.3)
    as_of = _as_of(config)
    end = as_of + HORIZON
    effects = true_effects(config, world_, data.truth, data.events, as_of, HORIZON)
    dogs = sleeping_dogs(config)["email"]
    buyers = (
        data.events.filter(
            (pl.col("event_name") == "purchase")
            & (pl.col("event_time") > as_of)
            & (pl.col("event_time") <= end)
        )
        .get_column("visitor_id")
        .unique()
    )
    dog_buyers = [v for v in buyers.to_list() if dogs[int(v[1:])]]
    responsive = effects.filter(pl.col("response_email") > 0.02).head(300)["visitor_id"].to_list()
    contacted = pl.DataFrame(
        {"visitor_id": dog_buyers + responsive}, schema={"visitor_id": pl.String}
    ).with_columns(pl.lit("email").alias("channel"))
    outcome = campaign_outcome(
        config,
        world_,
        data,
        contacted,
        as_of,
        HORIZON,
        reveal_from=as_of,
    )
    again = campaign_outcome(
        config,
        world_,
        data,
        contacted,
        as_of,
        HORIZON,
        reveal_from=as_of,
    )
    assert outcome.events.equals(again.events)  # a round is reproducible
    caused = outcome.events.filter(pl.col("transaction_id").str.starts_with("c"))
    assert outcome.caused["email"] > 0 and caused.height > 0
    assert set(caused["visitor_id"]) <= set(responsive)
    assert caused["event_time"].min() > as_of and caused["event_time"].max() <= end
    kept = outcome.events.filter(pl.col("event_name") == "purchase")["visitor_id"]
    assert dog_buyers and not set(dog_buyers) & set(kept)  # put off: their orders cancelled
    assert outcome.prevented["email"] == len(outcome.prevented_transactions) > 0
    # Everything else the shop did in the window is revealed as it was.
    untouched = data.events.filter(
        (pl.col("event_time") >= as_of)
        & (pl.col("event_time") < end)
        & ~pl.col("transaction_id").is_in(outcome.prevented_transactions).fill_null(False)
    )
    revealed = outcome.events.filter(~pl.col("session_id").str.starts_with("c").fill_null(False))
    assert revealed.sort("event_time", "visitor_id", "event_name", "item_id").equals(
        untouched.sort("event_time", "visitor_id", "event_name", "item_id")
    )


def test_a_window_past_the_simulation_is_refused(
    shop: tuple[SimulationConfig, World, SimulatedData],
) -> None:
    config, world_, data = shop
    late = config.end - timedelta(days=3)
    contacted = pl.DataFrame({"visitor_id": ["v0000001"], "channel": ["email"]})
    with pytest.raises(ValueError, match="after the simulation"):
        campaign_outcome(config, world_, data, contacted, late, HORIZON, reveal_from=late)


def test_the_default_effects_are_the_published_ones() -> None:
    """On the default shop, among the visitors active in the 30 days before the contact:
    email about +88% purchases among subscribers (Hillstrom's e-mail test), an ad reach
    about +10.5% among consenting visitors (Johnson, Lewis and Nubbemeyer 2017)."""
    config = SimulationConfig(visitors=200_000, days=90, seed=7)
    data, shop = simulate(config), world(config)
    as_of = config.start + timedelta(days=60)
    active = _active(data, as_of)
    effects = true_effects(config, shop, data.truth, data.events, as_of, HORIZON)
    people = active.join(effects, on="visitor_id").join(data.contacts, on="visitor_id")
    for channel, column, value, published in (
        ("email", "email_status", "subscribed", 0.88),
        ("ads", "ads_consent", "granted", 0.105),
    ):
        reached = people.filter(pl.col(column) == value)
        relative = reached[f"delta_{channel}"].mean() / reached["p_control"].mean()  # type: ignore[operator]
        assert relative == pytest.approx(published, rel=0.15), channel
