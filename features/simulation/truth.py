"""The exact purchase probability of each visitor under the simulator's generative model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from features.simulation.seasonality import FloatArray, IntArray, seasonal_days
from features.simulation.visitors import US_PER_MINUTE

#: Columns of the truth table that ``true_purchase_probability`` reads.
TRUTH_COLUMNS: tuple[str, ...] = (
    "visitor_id", "alive_from", "churn_at", "arrives", "session_rate_per_day",
    "p_buy_session", "session_minutes", "weekend_factor",
)  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"as_of must be timezone-aware, got {moment!r}")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _epoch_us(truth: pl.DataFrame, column: str) -> IntArray:
    return truth.get_column(column).dt.epoch("us").to_numpy().astype(np.int64)


def _floats(truth: pl.DataFrame, column: str) -> FloatArray:
    return truth.get_column(column).cast(pl.Float64).to_numpy()


def true_purchase_probability(
    truth: pl.DataFrame, as_of: datetime, horizon: timedelta
) -> pl.DataFrame:
    """``visitor_id, p_true``: P(the visitor purchases in ``(as_of, as_of + horizon]``).

    Exact under the generative model (see ``features.simulation.sessions``). With ``T =
    as_of``, ``h = horizon`` and, per visitor, ``a = alive_from``, ``d = churn_at``,
    ``λ = session_rate_per_day``, ``p = p_buy_session``, ``m = session_minutes``:

    - return sessions buy at the points of a thinned Poisson process with intensity
      ``p λ s(t)`` on ``(a, d]``, so their expected number of purchases in the window is
      ``Λ = p λ (S(min(T+h, d)) - S(max(T, a)))⁺``, where ``S(t) = ∫ s`` is the exactly
      integrated weekly/hourly seasonality (``features.simulation.seasonality``);
    - a visitor who ``arrives`` at ``a`` has an arrival session that buys with probability
      ``p`` at ``a + L``, ``L ~ Exponential(mean m)``: ``q = p (F(T+h-a) - F(T-a))`` with
      ``F(x) = 1 - exp(-x/m)`` for ``x > 0``, else 0.

    The two are independent, so ``p_true = 1 - (1 - q) exp(-Λ)``. Purchases are counted by
    their event time; refunds do not undo them. Only windows that end by the end of the
    simulated period can be checked against the simulated events.
    """
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise ValueError(f"truth lacks columns {missing}")
    start_us = _micros(as_of)
    end_us = start_us + horizon // timedelta(microseconds=1)
    alive_from, churn = _epoch_us(truth, "alive_from"), _epoch_us(truth, "churn_at")
    weekend = _floats(truth, "weekend_factor")
    p_buy = _floats(truth, "p_buy_session")

    lo = np.maximum(alive_from, start_us)
    hi = np.maximum(np.minimum(churn, end_us), lo)
    exposure = seasonal_days(hi, weekend) - seasonal_days(lo, weekend)
    expected = p_buy * _floats(truth, "session_rate_per_day") * exposure

    mean_length = _floats(truth, "session_minutes") * US_PER_MINUTE
    arrival = _arrival_purchase(alive_from, start_us, end_us, mean_length)
    q = np.where(truth.get_column("arrives").to_numpy(), p_buy * arrival, 0.0)
    p_true = -np.expm1(-expected) + q * np.exp(-expected)
    return pl.DataFrame({"visitor_id": truth.get_column("visitor_id"), "p_true": p_true})


def _arrival_purchase(
    alive_from: IntArray, start_us: int, end_us: int, mean_length: FloatArray
) -> FloatArray:
    """P(the arrival session's last event falls in ``(start_us, end_us]``)."""

    def length_cdf(limit_us: int) -> FloatArray:
        elapsed = (limit_us - alive_from).astype(np.float64)
        return np.where(elapsed > 0, -np.expm1(-np.maximum(elapsed, 0.0) / mean_length), 0.0)

    return np.asarray(length_cdf(end_us) - length_cdf(start_us), dtype=np.float64)
