"""The ideal observer (``features.simulation.ideal``): its sufficient statistics, its algebra,
and that it is calibrated and ranks below the yardsticks that know more."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from sklearn.metrics import roc_auc_score

from contract.metrics import expected_calibration_error
from features.events.schema import TIME_DTYPE
from features.simulation import (
    SimulatedData,
    SimulationConfig,
    as_of_purchase_probability,
    last_seen,
    simulate,
)
from features.simulation.ideal import (
    HISTORY_COLUMNS,
    ideal_purchase_probability,
    observed_histories,
)
from features.simulation.reference import reference_probabilities

CONFIG = SimulationConfig(visitors=20_000, days=90, seed=7)
AS_OF, HORIZON = CONFIG.start + timedelta(days=45), timedelta(days=30)


@pytest.fixture(scope="module")
def data() -> SimulatedData:
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def scored(data: SimulatedData) -> pl.DataFrame:
    """Every visitor seen before ``AS_OF``: the three probabilities and the realised label."""
    window = (pl.col("event_time") > AS_OF) & (pl.col("event_time") <= AS_OF + HORIZON)
    bought = data.events.filter((pl.col("event_name") == "purchase") & window)
    return (
        reference_probabilities(data.truth, data.events, [AS_OF], HORIZON, CONFIG)
        .filter(pl.col("p_ideal").is_not_null())
        .with_columns(
            pl.col("visitor_id").is_in(bought.get_column("visitor_id").implode()).alias("bought")
        )
    )


def _events(rows: Sequence[tuple[str | None, str, int, str | None]]) -> pl.DataFrame:
    """Canonical-enough events from ``(session_id, event_name, minutes after start, user_id)``."""
    return pl.DataFrame(
        {
            "visitor_id": ["v1"] * len(rows),
            "session_id": [r[0] for r in rows],
            "event_name": [r[1] for r in rows],
            "event_time": [CONFIG.start + timedelta(minutes=r[2]) for r in rows],
            "user_id": [r[3] for r in rows],
        },
        schema_overrides={"event_time": TIME_DTYPE},
    )


HISTORY = [
    ("s1", "page_view", 0, None), ("s1", "view_item", 1, None), ("s1", "page_view", 2, None),
    ("s1", "add_to_cart", 3, None), ("s1", "begin_checkout", 4, None), ("s1", "purchase", 5, "u"),
    ("s2", "page_view", 600, None), ("s2", "page_view", 610, None),
    ("s2", "view_item", 611, None), (None, "refund", 700, "u"),  # a refund has no session
    ("s3", "page_view", 2000, None), ("s3", "add_to_cart", 2001, None),
]  # fmt: skip


def test_histories_hold_the_sufficient_statistics() -> None:
    history = observed_histories(_events(HISTORY), CONFIG.start + timedelta(minutes=1000))
    assert history.columns == list(HISTORY_COLUMNS)
    row = history.row(0, named=True)
    # s3 is not seen yet; the refund is not a session event.
    assert (row["sessions"], row["carts"], row["checkouts"], row["purchases"]) == (2, 1, 1, 1)
    # s1's product page was forced by its cart; s2 viewed one item of two page views.
    assert (row["product_pages"], row["other_pages"]) == (1, 2)
    assert row["logged_in"] is True
    assert row["first_seen"] == CONFIG.start
    assert row["first_session_end"] == CONFIG.start + timedelta(minutes=5)
    assert row["last_seen"] == CONFIG.start + timedelta(minutes=611)


def test_a_later_funnel_step_implies_the_earlier_ones() -> None:
    # The session began before the data: its add_to_cart is missing, its checkout is not.
    cut = [("s1", "begin_checkout", 0, None), ("s1", "purchase", 1, None)]
    row = observed_histories(_events(cut), CONFIG.start + timedelta(days=1)).row(0, named=True)
    assert (row["carts"], row["checkouts"], row["purchases"]) == (1, 1, 1)
    assert row["product_pages"] == 0 and row["other_pages"] == 0


def test_a_known_rate_and_intent_give_the_as_of_probability(data: SimulatedData) -> None:
    """With a degenerate prior there is nothing to infer but churn: ``p_ideal == p_as_of``."""
    known = replace(CONFIG, session_rate_sigma=1e-9, intent_sd=1e-9)
    histories = observed_histories(data.events, AS_OF)
    ideal = ideal_purchase_probability(histories, known, AS_OF, HORIZON)
    median = data.truth.with_columns(
        session_rate_per_day=pl.lit(known.session_rate_median),
        p_buy_session=pl.lit(known.cart_rate * known.checkout_rate * known.purchase_rate),
    )
    as_of = as_of_purchase_probability(median, last_seen(data.events, AS_OF), AS_OF, HORIZON)
    both = ideal.join(as_of, on="visitor_id", how="full", coalesce=True)
    assert both.height == ideal.height == as_of.height
    assert_allclose(both.get_column("p_ideal"), both.get_column("p_as_of"), rtol=1e-6)


def test_ideal_observer_is_calibrated_and_ranks_below_what_knows_more(
    scored: pl.DataFrame,
) -> None:
    labels = scored.get_column("bought").to_numpy()
    p_ideal = scored.get_column("p_ideal").to_numpy()
    assert labels.sum() > 80
    assert np.all((p_ideal > 0) & (p_ideal < 1))
    # Calibrated: expected purchases match realised ones and p_as_of's (the tower rule).
    expected, spread = p_ideal.sum(), np.sqrt((p_ideal * (1 - p_ideal)).sum())
    assert abs(labels.sum() - expected) < 3 * spread
    assert abs(scored.get_column("p_as_of").sum() - expected) < 0.25 * spread
    # ECE no larger than perfectly calibrated labels drawn from p_ideal itself give (99%).
    rng = np.random.default_rng(0)
    null = [
        expected_calibration_error(rng.random(p_ideal.size) < p_ideal, p_ideal) for _ in range(200)
    ]
    assert expected_calibration_error(labels, p_ideal) < np.quantile(null, 0.99)
    # Knowing less can only cost ranking (AUC noise here is about 0.02).
    auc = {c: roc_auc_score(labels, scored.get_column(c)) for c in ("p_ideal", "p_as_of", "p_true")}
    assert 0.65 < auc["p_ideal"] < auc["p_as_of"] < auc["p_true"]


def test_zero_horizon_means_no_purchase(data: SimulatedData) -> None:
    histories = observed_histories(data.events, AS_OF).head(300)
    ideal = ideal_purchase_probability(histories, CONFIG, AS_OF, timedelta(0))
    assert (ideal.get_column("p_ideal") == 0).all()


def test_histories_must_carry_every_statistic() -> None:
    with pytest.raises(ValueError, match="histories lack"):
        ideal_purchase_probability(pl.DataFrame({"visitor_id": ["v1"]}), CONFIG, AS_OF, HORIZON)


def _history(sessions: int, carts: int, checkouts: int, purchases: int, gap: float) -> dict:
    last = AS_OF - timedelta(days=gap)
    return {
        "visitor_id": "v", "first_seen": last - timedelta(days=sessions), "last_seen": last,
        "first_session_end": last - timedelta(days=sessions), "sessions": sessions,
        "carts": carts, "checkouts": checkouts, "purchases": purchases,
        "product_pages": 2 * sessions, "other_pages": 3 * sessions, "logged_in": False,
    }  # fmt: skip


def _p(rows: list[dict]) -> np.ndarray:
    frame = pl.DataFrame(rows).with_columns(pl.col("^first_.*|last_seen$").cast(TIME_DTYPE))
    return ideal_purchase_probability(frame, CONFIG, AS_OF, timedelta(days=7))["p_ideal"].to_numpy()


@settings(max_examples=40, deadline=None)
@given(
    sessions=st.integers(1, 30),
    steps=st.lists(st.floats(0, 1), min_size=3, max_size=3),
    gap=st.floats(0.01, 40),
)
def test_a_step_further_down_the_funnel_never_lowers_the_probability(
    sessions: int, steps: list[float], gap: float
) -> None:
    """Every funnel step is more likely the keener the visitor, so one more cart, checkout or
    purchase in the same sessions raises the posterior intent (likelihood ratio order)."""
    carts = int(steps[0] * (sessions - 1))
    checkouts = int(steps[1] * carts)
    purchases = int(steps[2] * checkouts)
    base = _history(sessions, carts, checkouts, purchases, gap)
    more = [
        base,
        _history(sessions, carts + 1, checkouts, purchases, gap),
        _history(sessions, carts + 1, checkouts + 1, purchases, gap),
        _history(sessions, carts + 1, checkouts + 1, purchases + 1, gap),
    ]
    p = _p(more)
    assert np.all(np.diff(p) >= -1e-12 * p[:-1])


@settings(max_examples=30, deadline=None)
@given(sessions=st.integers(1, 30), gap=st.floats(0.01, 40), weeks=st.integers(1, 3))
def test_a_longer_silence_never_raises_the_probability(
    sessions: int, gap: float, weeks: int
) -> None:
    """The same history moved back by whole weeks: only the silence since it grows. (Moved by
    part of a week, its sessions fall in other hours of the weekly season, and the timing
    evidence may then rightly raise the probability: 7 sessions, 24 days' gap, 6 hours more
    raised it by 1%.)"""
    longer = 7.0 * weeks
    p = _p([_history(sessions, 1, 0, 0, gap), _history(sessions, 1, 0, 0, gap + longer)])
    assert p[1] <= p[0] * (1 + 1e-9)


def test_as_of_must_be_timezone_aware() -> None:
    histories = pl.DataFrame([_history(2, 0, 0, 0, 1.0)]).with_columns(
        pl.col("^first_.*|last_seen$").cast(TIME_DTYPE)
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        ideal_purchase_probability(histories, CONFIG, datetime(2024, 2, 1), HORIZON)


def test_the_prior_round_trips_as_json() -> None:
    assert SimulationConfig.from_json(CONFIG.to_json()) == CONFIG
    with pytest.raises(ValueError, match="unknown simulation settings"):
        SimulationConfig.from_json('{"visitors": 3, "intent": 1.0}')
