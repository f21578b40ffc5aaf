"""Small synthetic snapshot stacks with a known signal, for training tests (fast: numpy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

FEATURES: tuple[str, ...] = (
    "n_add_to_cart_7d", "n_sessions", "days_since_last_event", "mean_price_viewed", "noise",
)  # fmt: skip
FIRST_CUTOFF = datetime(2024, 1, 1, tzinfo=UTC)
WEEK = timedelta(days=7)


def true_logit(carts: np.ndarray, sessions: np.ndarray, recency: np.ndarray) -> np.ndarray:
    recency_filled = np.nan_to_num(recency, nan=30.0)
    return -3.0 + 0.9 * np.log1p(carts) + 0.4 * np.log1p(sessions) - 0.06 * recency_filled


def snapshot_stack(
    visitors: int = 1500, cutoffs: int = 5, seed: int = 0, shift: float = 0.0
) -> pl.DataFrame:
    """``visitor_id, as_of, label, FEATURES, p_true``; weekly cutoffs from ``FIRST_CUTOFF``.

    Each cutoff draws its visitors from a pool twice its size, so some visitors return.
    ``shift`` raises activity in later cutoffs (drift between validation and test).
    """
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(cutoffs):
        ids = rng.choice(2 * visitors, size=visitors, replace=False)
        lift = 1.0 + shift * index
        carts = rng.poisson(0.6 * lift, visitors)
        sessions = rng.poisson(2.0 * lift, visitors) + 1
        recency = rng.exponential(8.0, visitors)
        recency[rng.random(visitors) < 0.1] = np.nan
        price = np.where(rng.random(visitors) < 0.2, np.nan, rng.lognormal(3, 0.5, visitors))
        p_true = 1 / (1 + np.exp(-true_logit(carts, sessions, recency)))
        frames.append(pl.DataFrame({
            "visitor_id": [f"v{i}" for i in ids],
            "as_of": [FIRST_CUTOFF + index * WEEK] * visitors,
            "label": (rng.random(visitors) < p_true).astype(np.int64),
            "n_add_to_cart_7d": carts.astype(np.int64),
            "n_sessions": sessions.astype(np.int64),
            "days_since_last_event": recency,
            "mean_price_viewed": price,
            "noise": rng.normal(size=visitors),
            "p_true": p_true,
        }))  # fmt: skip
    return pl.concat(frames).with_columns(pl.col("as_of").cast(pl.Datetime("us", "UTC")))


def contacts_for(snapshots: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    ids = snapshots.get_column("visitor_id").unique().sort()
    rng = np.random.default_rng(seed)
    status = np.where(rng.random(len(ids)) < 0.4, "subscribed", "unsubscribed")
    return pl.DataFrame({"visitor_id": ids, "email_status": status})
