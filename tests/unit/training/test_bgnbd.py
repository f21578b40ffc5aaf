"""BG/NBD: the RFM summary from canonical events, and the fit on known parameters."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from training.bgnbd import (
    BGNBDParams,
    fit_bgnbd,
    probability_alive,
    probability_purchase,
    rfm_summary,
    score_visitors,
)

AS_OF = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _events(rows: list[tuple[str, timedelta, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "visitor_id": [r[0] for r in rows],
            "event_time": [AS_OF + r[1] for r in rows],
            "event_name": [r[2] for r in rows],
        },
        schema={
            "visitor_id": pl.String,
            "event_time": pl.Datetime("us", "UTC"),
            "event_name": pl.String,
        },
    )


def test_summary_counts_repeat_purchase_days_before_as_of() -> None:
    events = _events([
        ("a", -14 * DAY, "purchase"), ("a", -14 * DAY + timedelta(hours=2), "purchase"),
        ("a", -7 * DAY, "purchase"), ("a", -DAY, "page_view"), ("a", DAY, "purchase"),
        ("b", -7 * DAY, "purchase"), ("c", -DAY, "page_view"),
    ])  # fmt: skip
    summary = rfm_summary(events, AS_OF, time_unit=DAY)
    assert summary["visitor_id"].to_list() == ["a", "b"]
    assert summary["frequency"].to_list() == [1.0, 0.0]  # same-day purchases count once
    assert summary["recency"].to_list() == [7.0, 0.0]
    assert summary["T"].to_list() == [14.0, 7.0]


def _simulate(
    params: BGNBDParams, customers: int, weeks: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rate = rng.gamma(params.r, 1 / params.alpha, customers)
    dropout = rng.beta(params.a, params.b, customers)
    x, t_x = np.zeros(customers), np.zeros(customers)
    for i in range(customers):
        now = 0.0
        while True:
            now += rng.exponential(1 / rate[i])
            if now > weeks:
                break
            x[i], t_x[i] = x[i] + 1, now
            if rng.random() < dropout[i]:
                break
    return x, t_x, np.full(customers, weeks)


def test_fit_recovers_known_parameters() -> None:
    truth = BGNBDParams(r=0.5, alpha=3.0, a=0.8, b=2.5)
    x, t_x, big_t = _simulate(truth, customers=4000, weeks=39.0, seed=0)
    fitted = fit_bgnbd(x, t_x, big_t)
    assert fitted.r == pytest.approx(truth.r, rel=0.2)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.3)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(0.8 / 3.3, rel=0.3)


def test_probabilities_behave() -> None:
    params = BGNBDParams(r=0.24, alpha=4.4, a=0.79, b=2.43)
    # Same frequency, an older last purchase: less likely alive and to buy.
    alive = probability_alive(
        params, np.array([3.0, 3.0]), np.array([30.0, 5.0]), np.array([39.0, 39.0])
    )
    assert alive[0] > alive[1]
    buy = probability_purchase(
        params, np.array([0.0, 3.0]), np.array([0.0, 30.0]), np.array([39.0, 39.0]), horizon=13.0
    )
    assert np.all((buy > 0) & (buy < 1))
    assert buy[1] > buy[0]


def test_visitors_without_purchases_get_the_new_customer_value() -> None:
    params = BGNBDParams(r=0.24, alpha=4.4, a=0.79, b=2.43)
    summary = rfm_summary(_events([("a", -7 * DAY, "purchase")]), AS_OF)
    scores = score_visitors(params, summary, np.array(["a", "z"]), horizon=13 * 7 * DAY)
    assert scores[1] == pytest.approx(1 - (params.alpha / (params.alpha + 13)) ** params.r)


@pytest.mark.shared_data
def test_cdnow_sample_gives_the_published_parameters(shared_data: Path) -> None:
    """Fader, Hardie & Lee (2005): r=0.243, alpha=4.414, a=0.793, b=2.426 (weeks)."""
    path = shared_data / "cdnow" / "CDNOW_sample.txt.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with gzip.open(path, "rt") as lines:
        rows = [line.split() for line in lines if line.strip()]
    events = pl.DataFrame({
        "visitor_id": [r[0] for r in rows],
        "event_time": [datetime.strptime(r[2], "%Y%m%d").replace(tzinfo=UTC) for r in rows],
        "event_name": ["purchase"] * len(rows),
    })  # fmt: skip
    summary = rfm_summary(events, datetime(1997, 10, 1, tzinfo=UTC))
    fitted = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    assert summary.height == 2357
    assert fitted.r == pytest.approx(0.243, rel=0.05)
    assert fitted.alpha == pytest.approx(4.414, rel=0.05)
    assert fitted.a == pytest.approx(0.793, rel=0.05)
    assert fitted.b == pytest.approx(2.426, rel=0.05)


def test_bgnbd_runs_only_on_purchase_only_logs() -> None:
    from training.candidates import purchase_only

    assert purchase_only(_events([("a", -DAY, "purchase"), ("a", -DAY, "refund")]))
    assert not purchase_only(_events([("a", -DAY, "purchase"), ("b", -DAY, "page_view")]).lazy())
