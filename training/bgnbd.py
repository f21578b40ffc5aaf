"""BG/NBD (Fader, Hardie & Lee 2005) for purchase-only data, fitted with scipy.

No maintained library installs cleanly here (``lifetimes`` is unmaintained since 2020,
``btyd`` pulls PyMC 4 and Aesara, ``pymc-marketing`` a full PyMC stack), and the model is
small: a four-parameter likelihood in closed form.

Per customer, from purchases before ``as_of`` (one repeat transaction per distinct UTC day,
the usual convention): ``frequency`` x = purchase days after the first, ``recency`` t_x = time
from the first to the last purchase day, ``T`` = time from the first purchase day to
``as_of``; times in ``time_unit`` (weeks by default, as in the paper).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

Array = npt.NDArray[np.float64]
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def rfm_summary(
    events: pl.DataFrame | pl.LazyFrame, as_of: datetime, time_unit: timedelta = WEEK
) -> pl.DataFrame:
    """``visitor_id, frequency, recency, T`` of every visitor with a purchase before ``as_of``.

    ``events``: canonical events (``features.events.schema``); rows that are not
    ``purchase`` or are at or after ``as_of`` are ignored.
    """
    unit_us = time_unit / timedelta(microseconds=1)
    days = (
        events.lazy()
        .filter((pl.col("event_name") == "purchase") & (pl.col("event_time") < as_of))
        .select("visitor_id", pl.col("event_time").dt.truncate("1d").alias("day"))
        .unique()
    )
    summary = days.group_by("visitor_id").agg(
        (pl.len() - 1).cast(pl.Float64).alias("frequency"),
        pl.col("day").min().alias("_first"),
        pl.col("day").max().alias("_last"),
    )
    span = (pl.col("_last") - pl.col("_first")).dt.total_microseconds() / unit_us
    age = (pl.lit(as_of) - pl.col("_first")).dt.total_microseconds() / unit_us
    return (
        summary.select("visitor_id", "frequency", span.alias("recency"), age.alias("T"))
        .sort("visitor_id")
        .collect()
    )


def log_likelihood(params: Array, x: Array, t_x: Array, big_t: Array) -> Array:
    """Per-customer log-likelihood at ``params = (r, alpha, a, b)``."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + big_t)
    repeat = x > 0
    a4 = np.full_like(x, -np.inf)
    a4[repeat] = (
        np.log(a) - np.log(b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    )
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)


def fit_bgnbd(frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike) -> BGNBDParams:
    """Maximum-likelihood parameters (optimised on the log scale, so they stay positive)."""
    x, t_x, big_t = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
    if len(x) == 0:
        raise ValueError("BG/NBD needs at least one customer with a purchase")

    def loss(log_params: Array) -> float:
        return -float(log_likelihood(np.exp(log_params), x, t_x, big_t).mean())

    result = minimize(
        loss,
        x0=np.zeros(4),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000},
    )
    r, alpha, a, b = np.exp(result.x)
    return BGNBDParams(float(r), float(alpha), float(a), float(b))


def probability_alive(params: BGNBDParams, x: Array, t_x: Array, big_t: Array) -> Array:
    odds = np.where(
        x > 0,
        params.a
        / (params.b + np.maximum(x, 1) - 1)
        * ((params.alpha + big_t) / (params.alpha + t_x)) ** (params.r + x),
        0.0,
    )
    return np.asarray(1.0 / (1.0 + odds), dtype=np.float64)


def probability_purchase(
    params: BGNBDParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    big_t: npt.ArrayLike,
    horizon: float,
) -> Array:
    """P(at least one purchase in [T, T + horizon)): alive at T, then the first purchase
    of a Poisson(λ) process with λ ~ Gamma(r + x, alpha + T) falls inside the window."""
    x, t_x, big_t = (np.asarray(v, dtype=np.float64) for v in (x, t_x, big_t))
    silent = ((params.alpha + big_t) / (params.alpha + big_t + horizon)) ** (params.r + x)
    return probability_alive(params, x, t_x, big_t) * (1.0 - silent)


def score_visitors(
    params: BGNBDParams,
    summary: pl.DataFrame,
    visitor_ids: npt.ArrayLike,
    horizon: timedelta,
    time_unit: timedelta = WEEK,
) -> Array:
    """P(purchase in ``horizon``) for ``visitor_ids`` in order; a visitor without a purchase
    before the cutoff gets the model's value for a brand-new customer (x = t_x = T = 0)."""
    ids = pl.DataFrame({"visitor_id": np.asarray(visitor_ids)}).with_columns(
        pl.col("visitor_id").cast(summary.schema["visitor_id"])
    )
    joined = ids.join(summary, on="visitor_id", how="left", maintain_order="left").fill_null(0.0)
    return probability_purchase(
        params,
        joined.get_column("frequency").to_numpy(),
        joined.get_column("recency").to_numpy(),
        joined.get_column("T").to_numpy(),
        horizon / time_unit,
    )
