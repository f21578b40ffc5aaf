"""The ideal observer: the purchase probability that every event before ``as_of`` supports.

``p_true`` knows the churn time, ``p_as_of`` (``features.simulation.as_of``) still knows each
visitor's session rate and purchase intent. A model sees neither: it must infer them from a
few sessions. The ideal observer does exactly that under the simulator's own generative
model: ``p_ideal = E[p_as_of(rate, intent) | observed history]``, the posterior expectation
over the population prior of ``SimulationConfig``. No model fed the same events can rank or
calibrate better on average, so the model's AUC as a fraction of ``p_ideal``'s is the honest
score.

What the generator makes depend on latent parameters, and so what enters the likelihood
(everything else it draws, items, lengths, quantities, wishlists, removals, refunds, does not
depend on them):

- timing: the visitor either ``arrives`` (first event = arrival, uniform in seasonal time over
  the period, followed by return sessions) or was active at the start (every session is a
  return session); return sessions are a Poisson process of rate ``λ s(t)`` until churn, which
  is integrated out as in ``as_of`` (exponential lifetime, memoryless);
- per session, with intent ``z``: add to cart, begin checkout given cart, purchase given
  checkout (``p_cart``, ``p_checkout``, ``p_purchase``), and each page view that the funnel
  does not force (a cart session's first) is a product page (view_item) w.p. ``p_product_page``;
- whether the visitor logs in (any event with a ``user_id``), w.p. ``p_login(z)``.

Rate and intent have independent priors and separate likelihoods, so their posteriors are
independent; each is a dense quadrature on standard-normal nodes. Session lengths (minutes)
are neglected against days, as in ``as_of``: a session's time is its last event's, and a
session still in progress at ``as_of`` counts as it stands.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from features.simulation.as_of import GRID, _midpoints
from features.simulation.config import SimulationConfig
from features.simulation.seasonality import (
    HOURS_PER_WEEK,
    REFERENCE_MONDAY_US,
    US_PER_HOUR,
    FloatArray,
    IntArray,
    seasonal_days,
    weekly_multiplier,
)
from features.simulation.truth import _epoch_us, _micros
from features.simulation.visitors import (
    CART_INTENT_SLOPE,
    CHECKOUT_INTENT_SLOPE,
    LOGIN_INTENT_SLOPE,
    PRODUCT_PAGE_INTENT_SLOPE,
    PURCHASE_INTENT_SLOPE,
    US_PER_DAY,
    logit,
    sigmoid,
    time_us,
)

#: Standard-normal quadrature nodes for the log session rate and the intent logit. The step
#: (1/16 of a prior sd) stays well below the posterior sd of a visitor with 60 sessions.
NODES = np.linspace(-5.0, 5.0, 161)
#: Visitors per block: a block holds visitors x NODES x GRID floats (about 80 MB).
CHUNK = 512
#: ``observed_histories`` columns that ``ideal_purchase_probability`` reads.
HISTORY_COLUMNS: tuple[str, ...] = (
    "visitor_id", "first_seen", "first_session_end", "last_seen", "sessions", "carts",
    "checkouts", "purchases", "product_pages", "other_pages", "logged_in",
)  # fmt: skip


def observed_histories(events: pl.DataFrame | pl.LazyFrame, as_of: datetime) -> pl.DataFrame:
    """One row per visitor with a session event strictly before ``as_of``: the sufficient
    statistics of the ideal observer (``HISTORY_COLUMNS``).

    ``first_seen``/``last_seen``: first and last session event; ``first_session_end``: last
    event of the session that holds the first event. Per session, a later funnel step implies
    the earlier ones (a session cut by the period start may have lost them); product pages not
    forced by the funnel (a cart session's first) and other page views are summed.
    """
    name = pl.col("event_name")
    steps = {"cart": ["add_to_cart", "begin_checkout", "purchase"],
             "checkout": ["begin_checkout", "purchase"], "purchase": ["purchase"]}  # fmt: skip
    sessions = (
        events.lazy()
        .filter((pl.col("event_time") < as_of) & pl.col("session_id").is_not_null())
        .group_by("visitor_id", "session_id")
        .agg(
            pl.col("event_time").min().alias("start"),
            pl.col("event_time").max().alias("end"),
            (name == "page_view").sum().cast(pl.Int64).alias("views"),
            (name == "view_item").sum().cast(pl.Int64).alias("items"),
            pl.col("user_id").is_not_null().any().alias("logged_in"),
            *(name.is_in(names).any().cast(pl.Int64).alias(step) for step, names in steps.items()),
        )
    )
    return (
        sessions.group_by("visitor_id")
        .agg(
            pl.col("start").min().alias("first_seen"),
            pl.col("end").sort_by("start").first().alias("first_session_end"),
            pl.col("end").max().alias("last_seen"),
            pl.len().cast(pl.Int64).alias("sessions"),
            pl.col("cart").sum().alias("carts"),
            pl.col("checkout").sum().alias("checkouts"),
            pl.col("purchase").sum().alias("purchases"),
            (pl.col("items") - pl.col("cart")).clip(0).sum().alias("product_pages"),
            (pl.col("views") - pl.col("items")).clip(0).sum().alias("other_pages"),
            pl.col("logged_in").any(),
        )
        .sort("visitor_id")
        .collect()
    )


def ideal_purchase_probability(
    histories: pl.DataFrame, config: SimulationConfig, as_of: datetime, horizon: timedelta
) -> pl.DataFrame:
    """``visitor_id, p_ideal``: P(purchase in ``(as_of, as_of + horizon]`` | history) for the
    visitors of ``histories`` (``observed_histories`` at the same ``as_of``), under the
    generative model and population prior of ``config``."""
    missing = [c for c in HISTORY_COLUMNS if c not in histories.columns]
    if missing:
        raise ValueError(f"histories lack columns {missing}")
    t_us, h_us = _micros(as_of), horizon // timedelta(microseconds=1)
    rates = config.session_rate_median * np.exp(config.session_rate_sigma * NODES)
    intents = config.intent_sd * NODES
    buy = _buy_table(config, rates, _funnel(config, intents)[0], t_us, h_us)
    # Posterior-weighted P(buy | alive at as_of) per visitor and rate node.
    buy_given_rate = _intent_posterior(histories, config, intents) @ buy.T
    blocks = [
        _rate_expectation(
            histories[lo : lo + CHUNK], config, rates, t_us, buy_given_rate[lo : lo + CHUNK]
        )
        for lo in range(0, histories.height, CHUNK)
    ]
    p_ideal = np.concatenate(blocks) if blocks else np.zeros(0)
    return pl.DataFrame({"visitor_id": histories.get_column("visitor_id"), "p_ideal": p_ideal})


def _log_prior(nodes: FloatArray) -> FloatArray:
    """Log weights of the standard-normal prior on equally spaced ``nodes`` (sum to one)."""
    log_density = -0.5 * nodes**2
    return np.asarray(log_density - np.logaddexp.reduce(log_density), dtype=np.float64)


def _funnel(config: SimulationConfig, intents: FloatArray) -> tuple[FloatArray, ...]:
    """``p_buy, p_cart, p_checkout, p_purchase, p_product_page, p_login`` per intent node,
    exactly as ``features.simulation.visitors.draw_visitors`` sets them."""
    cart = sigmoid(logit(config.cart_rate) + CART_INTENT_SLOPE * intents)
    checkout = sigmoid(logit(config.checkout_rate) + CHECKOUT_INTENT_SLOPE * intents)
    purchase = sigmoid(logit(config.purchase_rate) + PURCHASE_INTENT_SLOPE * intents)
    page = sigmoid(logit(config.product_page_share) + PRODUCT_PAGE_INTENT_SLOPE * intents)
    login = sigmoid(logit(config.login_share) + LOGIN_INTENT_SLOPE * intents)
    return cart * checkout * purchase, cart, checkout, purchase, page, login


def _intent_posterior(
    histories: pl.DataFrame, config: SimulationConfig, intents: FloatArray
) -> FloatArray:
    """Visitors x intent nodes: posterior weights given the funnel outcomes and login."""

    def count(column: str) -> FloatArray:
        return histories.get_column(column).cast(pl.Float64).to_numpy()[:, None]

    _, cart, checkout, purchase, page, login = (
        np.log(p)[None, :] for p in _funnel(config, intents)
    )
    _, no_cart, no_checkout, no_purchase, no_page, no_login = (
        np.log1p(-p)[None, :] for p in _funnel(config, intents)
    )
    sessions, carts, checkouts = count("sessions"), count("carts"), count("checkouts")
    purchases, logged_in = count("purchases"), count("logged_in")
    log_post = (
        _log_prior(NODES)[None, :]
        + carts * cart + (sessions - carts) * no_cart
        + checkouts * checkout + (carts - checkouts) * no_checkout
        + purchases * purchase + (checkouts - purchases) * no_purchase
        + count("product_pages") * page + count("other_pages") * no_page
        + logged_in * login + (1 - logged_in) * no_login
    )  # fmt: skip
    return _normalised(log_post)


def _normalised(log_weights: FloatArray) -> FloatArray:
    weights = np.exp(log_weights - log_weights.max(axis=1, keepdims=True))
    return np.asarray(weights / weights.sum(axis=1, keepdims=True), dtype=np.float64)


def _buy_table(
    config: SimulationConfig, rates: FloatArray, p_buy: FloatArray, t_us: int, h_us: int
) -> FloatArray:
    """Rate nodes x intent nodes: P(purchase in ``(T, T+h]`` | alive at ``T``), the second
    factor of ``as_of_purchase_probability`` (churn in the window integrated out)."""
    life_us, weekend = config.lifetime_days * US_PER_DAY, config.weekend_factor
    start, end = np.array([t_us]), np.array([t_us + h_us])
    churn_at = _midpoints(start, end)  # 1 x GRID
    exposure = seasonal_days(churn_at, weekend) - seasonal_days(start, weekend)[:, None]
    intensity = (rates[:, None] * p_buy[None, :])[:, :, None]  # rates x intents x 1
    buys = -np.expm1(-intensity * exposure[None, :, :])
    density = np.exp(-(churn_at - t_us) / life_us) / life_us
    buys_then_churns = (buys * density).mean(axis=2) * h_us
    window = float((seasonal_days(end, weekend) - seasonal_days(start, weekend))[0])
    survives = np.exp(-h_us / life_us) * -np.expm1(-intensity[:, :, 0] * window)
    return np.asarray(buys_then_churns + survives, dtype=np.float64)


def _season_at(times: IntArray, weekend_factor: float) -> FloatArray:
    """``s(t)``: the seasonal intensity multiplier at each time."""
    hour = ((times - REFERENCE_MONDAY_US) // US_PER_HOUR) % HOURS_PER_WEEK
    return np.asarray(weekly_multiplier(weekend_factor)[hour], dtype=np.float64)


def _timing_log_likelihood(
    histories: pl.DataFrame, config: SimulationConfig, rates: FloatArray
) -> FloatArray:
    """Visitors x rate nodes: log P(session times up to the last one, alive then | rate),
    summed over "arrived at the first event" and "active since the period start", up to
    factors common to every rate node (the seasonality at return sessions)."""
    weekend, life_us = config.weekend_factor, config.lifetime_days * US_PER_DAY
    period_start, period_end = time_us(config)
    first, last = _epoch_us(histories, "first_seen"), _epoch_us(histories, "last_seen")
    first_end = _epoch_us(histories, "first_session_end")
    sessions = histories.get_column("sessions").cast(pl.Float64).to_numpy()[:, None]
    log_rate, clock_last = np.log(rates)[None, :], seasonal_days(last, weekend)[:, None]
    period = float(np.diff(seasonal_days(np.array([period_start, period_end]), weekend))[0])

    def returns(begin: IntArray, count: FloatArray) -> FloatArray:
        exposure = clock_last - seasonal_days(begin, weekend)[:, None]
        alive = -((last - begin) / life_us)[:, None]
        return np.asarray(count * log_rate - rates[None, :] * exposure + alive, dtype=np.float64)

    with np.errstate(divide="ignore"):
        log_arrived = np.log1p(-config.initial_share) + np.log(_season_at(first, weekend) / period)
        log_active = np.log(config.initial_share) + np.log(_season_at(first_end, weekend))
    arrived = log_arrived[:, None] + returns(first, sessions - 1)
    active = log_active[:, None] + returns(np.full_like(first, period_start), sessions)
    return np.asarray(np.logaddexp(arrived, active), dtype=np.float64)


def _rate_expectation(
    histories: pl.DataFrame,
    config: SimulationConfig,
    rates: FloatArray,
    t_us: int,
    buy_given_rate: FloatArray,
) -> FloatArray:
    """``E[P(alive at T | rate, silence) P(buy | rate, alive) | history]`` for one block."""
    weekend, life_us = config.weekend_factor, config.lifetime_days * US_PER_DAY
    last = np.minimum(_epoch_us(histories, "last_seen"), t_us)
    end = np.full_like(last, t_us)
    clock_last = seasonal_days(last, weekend)
    silence = seasonal_days(end, weekend) - clock_last
    silent_alive = np.exp(-((t_us - last) / life_us)[:, None] - rates[None, :] * silence[:, None])
    churn_at = _midpoints(last, end)
    since_seen = seasonal_days(churn_at, weekend) - clock_last[:, None]
    # Midpoint rule for the churn time in (last, T], as ``as_of._expected``.
    density = np.exp(-(churn_at - last[:, None]) / life_us) / life_us
    density *= ((t_us - last) / GRID)[:, None]
    quiet = np.exp(-rates[None, :, None] * since_seen[:, None, :])  # visitors x rates x GRID
    silent_gone = np.einsum("vj,vrj->vr", density, quiet)
    silent = silent_alive + silent_gone
    log_post = _log_prior(NODES)[None, :] + _timing_log_likelihood(histories, config, rates)
    weights = _normalised(log_post + np.log(silent))
    return np.asarray((weights * silent_alive / silent * buy_given_rate).sum(axis=1))
