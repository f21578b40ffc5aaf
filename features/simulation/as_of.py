"""The purchase probability a model could at best know at ``as_of``: churn inferred, not known.

``true_purchase_probability`` knows each visitor's churn time, so a visitor who has silently
left scores exactly 0. No event-based model can know that: a visitor who stopped visiting is
either gone or between visits. This module gives the probability given the latent rate and
intent (still more than events show) and the visitor's observed history up to ``as_of``,
with the churn time integrated out as the generative model implies. It is an upper bound on
what a model could reach from events, and a tighter one than ``p_true``; the ideal observer
(``features.simulation.ideal``) also infers the rate and intent and is the tight one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from features.simulation.seasonality import FloatArray, IntArray, seasonal_days
from features.simulation.truth import _epoch_us, _floats, _micros
from features.simulation.visitors import US_PER_DAY

#: Points of the midpoint rule over each churn-time interval (integrands are smooth).
GRID = 128


def last_seen(events: pl.DataFrame | pl.LazyFrame, as_of: datetime) -> pl.DataFrame:
    """``visitor_id, last_seen``: each visitor's last session event strictly before ``as_of``
    (canonical events, in memory or a lazy scan of the lake).

    Refunds are left out: they arrive days after the purchase, not in a session.
    """
    return (
        events.lazy()
        .filter((pl.col("event_time") < as_of) & (pl.col("event_name") != "refund"))
        .group_by("visitor_id")
        .agg(pl.col("event_time").max().alias("last_seen"))
        .collect()
    )


def as_of_purchase_probability(
    truth: pl.DataFrame, seen: pl.DataFrame, as_of: datetime, horizon: timedelta
) -> pl.DataFrame:
    """``visitor_id, p_as_of`` for the visitors of ``seen`` (``visitor_id, last_seen``).

    A visitor last seen at ``t`` was alive then; their remaining lifetime is exponential with
    mean ``lifetime_days`` (memoryless), return sessions arrive at rate ``λ s(u)``, each
    buying with probability ``p``. With churn time ``d`` and ``S`` the seasonal clock:

    - P(no session in ``(t, T]`` and ``d > T``) = ``e^{-(T-t)/L} e^{-λ (S(T) - S(t))}``;
    - P(no session in ``(t, T]`` and ``d`` in ``(t, T]``) = ``∫ f(d) e^{-λ (S(d) - S(t))}``;
    - given ``d > T``: P(buy in ``(T, T+h]``) = ``E[1 - e^{-p λ (S(min(d, T+h)) - S(T))}]``.

    ``p_as_of`` = P(alive at T | history) × P(buy | alive at T). Arrival sessions still in
    progress at ``as_of`` are ignored (minutes against a horizon of days).
    """
    rows = seen.join(truth, on="visitor_id", how="inner", maintain_order="left")
    t_us, h_us = _micros(as_of), horizon // timedelta(microseconds=1)
    last = np.minimum(_epoch_us(rows, "last_seen"), t_us)
    rate, p_buy = _floats(rows, "session_rate_per_day"), _floats(rows, "p_buy_session")
    weekend, life_us = _floats(rows, "weekend_factor"), _floats(rows, "lifetime_days") * US_PER_DAY
    clock_last = seasonal_days(last, weekend)
    clock_t = seasonal_days(np.full_like(last, t_us), weekend)
    start, end = np.full_like(last, t_us), np.full_like(last, t_us + h_us)

    silent_alive = np.exp(-(t_us - last) / life_us - rate * (clock_t - clock_last))
    churn_at = _midpoints(last, start)
    since_seen = seasonal_days(churn_at, weekend[:, None]) - clock_last[:, None]
    silent_gone = _expected(churn_at, last, start, life_us, np.exp(-rate[:, None] * since_seen))
    alive = silent_alive / (silent_alive + silent_gone)

    churn_at = _midpoints(start, end)
    exposure = seasonal_days(churn_at, weekend[:, None]) - clock_t[:, None]
    buys = -np.expm1(-(p_buy * rate)[:, None] * exposure)
    buys_then_churns = _expected(churn_at, start, end, life_us, buys)
    window = seasonal_days(end, weekend) - clock_t
    survives = np.exp(-h_us / life_us) * -np.expm1(-p_buy * rate * window)
    p_as_of = alive * (buys_then_churns + survives)
    return pl.DataFrame({"visitor_id": rows.get_column("visitor_id"), "p_as_of": p_as_of})


def _midpoints(lo: IntArray, hi: IntArray) -> IntArray:
    """Per row, ``GRID`` midpoints of ``[lo, hi]`` (a rows x GRID matrix)."""
    share = (np.arange(GRID) + 0.5) / GRID
    return np.rint(lo[:, None] + share[None, :] * (hi - lo)[:, None]).astype(np.int64)


def _expected(
    points: IntArray, lo: IntArray, hi: IntArray, life_us: FloatArray, values: FloatArray
) -> FloatArray:
    """``∫_lo^hi f(d) values(d) dd`` by the midpoint rule at ``points``, with ``f`` the
    exponential density of a churn time counted from ``lo`` (mean ``life_us``)."""
    density = np.exp(-(points - lo[:, None]) / life_us[:, None]) / life_us[:, None]
    return np.asarray((density * values).mean(axis=1) * (hi - lo), dtype=np.float64)
