"""Latent visitor parameters: when each visitor is alive, how often they visit, how keen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from features.events.schema import TIME_DTYPE
from features.simulation.config import SimulationConfig
from features.simulation.seasonality import FloatArray, IntArray, seasonal_days
from features.simulation.seasonality import inverse_seasonal_days as inverse_seasonal

BoolArray = npt.NDArray[np.bool_]
US_PER_DAY = 86_400_000_000
US_PER_MINUTE = 60_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: How strongly intent moves each funnel step (multiplies the intent logit).
CART_INTENT_SLOPE = 1.0
CHECKOUT_INTENT_SLOPE = 0.5
PURCHASE_INTENT_SLOPE = 0.4
PRODUCT_PAGE_INTENT_SLOPE = 0.3
LOGIN_INTENT_SLOPE = 0.5


def logit(p: float) -> float:
    clipped = min(max(p, 1e-12), 1 - 1e-12)
    return float(np.log(clipped / (1 - clipped)))


def sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def time_us(config: SimulationConfig) -> tuple[int, int]:
    """Start and exclusive end of the simulated period, in UTC microseconds."""
    start = (config.start - _EPOCH) // timedelta(microseconds=1)
    return start, start + config.days * US_PER_DAY


@dataclass(frozen=True)
class Visitors:
    """One entry per visitor (index = visitor number). Times in UTC microseconds.

    A visitor is alive on ``[alive_from, churn)``. Visitors that ``arrive`` during the period
    have an arrival session starting at ``alive_from``; those already active at the start
    do not. Return sessions end at the points of a Poisson process on ``(alive_from, churn]``
    with intensity ``session_rate * s(t)`` per day.
    """

    alive_from: IntArray
    churn: IntArray
    arrives: BoolArray
    session_rate: FloatArray
    intent_logit: FloatArray
    p_cart: FloatArray
    p_checkout: FloatArray
    p_purchase: FloatArray
    p_product_page: FloatArray
    logged_in: BoolArray

    @property
    def p_buy(self) -> FloatArray:
        """Probability that one session ends in a purchase."""
        return self.p_cart * self.p_checkout * self.p_purchase


def _arrivals(config: SimulationConfig, rng: np.random.Generator, n: int) -> IntArray:
    """Arrival times spread over the period following the weekly and daily pattern."""
    start_us, end_us = time_us(config)
    lo, hi = seasonal_days(np.array([start_us, end_us]), config.weekend_factor)
    times = inverse_seasonal(rng.uniform(lo, hi, n), config.weekend_factor)
    return np.clip(times, start_us, end_us - 1)


def draw_visitors(config: SimulationConfig, rng: np.random.Generator) -> Visitors:
    n = config.visitors
    start_us, _ = time_us(config)
    arrives = rng.random(n) >= config.initial_share
    alive_from = np.full(n, start_us, dtype=np.int64)
    alive_from[arrives] = _arrivals(config, rng, int(arrives.sum()))
    # Exponential lifetimes are memoryless, so visitors already active at the start can
    # draw their remaining lifetime from the same law.
    lifetime = rng.exponential(config.lifetime_days * US_PER_DAY, n)
    rate = config.session_rate_median * np.exp(config.session_rate_sigma * rng.standard_normal(n))
    intent = config.intent_sd * rng.standard_normal(n)
    return Visitors(
        alive_from=alive_from,
        churn=alive_from + np.rint(lifetime).astype(np.int64),
        arrives=arrives,
        session_rate=rate,
        intent_logit=intent,
        p_cart=sigmoid(logit(config.cart_rate) + CART_INTENT_SLOPE * intent),
        p_checkout=sigmoid(logit(config.checkout_rate) + CHECKOUT_INTENT_SLOPE * intent),
        p_purchase=sigmoid(logit(config.purchase_rate) + PURCHASE_INTENT_SLOPE * intent),
        p_product_page=sigmoid(
            logit(config.product_page_share) + PRODUCT_PAGE_INTENT_SLOPE * intent
        ),
        logged_in=rng.random(n) < sigmoid(logit(config.login_share) + LOGIN_INTENT_SLOPE * intent),
    )


def visitor_ids(n: int) -> pl.Series:
    """``v0000000`` ... zero-padded to at least 7 digits, index = visitor number."""
    width = max(7, len(str(n - 1)))
    return pl.select(
        pl.format("v{}", pl.int_range(0, n).cast(pl.String).str.zfill(width)).alias("id")
    ).to_series()


def _datetimes(values: IntArray) -> pl.Series:
    return pl.Series(values, dtype=pl.Int64).cast(TIME_DTYPE)


def truth_frame(visitors: Visitors, ids: pl.Series, config: SimulationConfig) -> pl.DataFrame:
    """One row per visitor: everything ``true_purchase_probability`` needs, and more."""
    n = ids.len()
    return pl.DataFrame(
        {
            "visitor_id": ids,
            "alive_from": _datetimes(visitors.alive_from),
            "churn_at": _datetimes(visitors.churn),
            "arrives": visitors.arrives,
            "session_rate_per_day": visitors.session_rate,
            "intent_logit": visitors.intent_logit,
            "intent": sigmoid(visitors.intent_logit),
            "p_add_to_cart": visitors.p_cart,
            "p_begin_checkout": visitors.p_checkout,
            "p_purchase": visitors.p_purchase,
            "p_buy_session": visitors.p_buy,
            "logged_in": visitors.logged_in,
            "session_minutes": np.full(n, config.session_minutes),
            "lifetime_days": np.full(n, config.lifetime_days),
            "weekend_factor": np.full(n, config.weekend_factor),
        }
    )
