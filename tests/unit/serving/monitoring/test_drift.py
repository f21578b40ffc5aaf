"""Drift and realised-performance arithmetic of ``propensity monitor``, on tiny arrays."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from serving.monitoring.drift import (
    MonitoringSettings,
    bin_shares,
    drift_table,
    new_category_share,
    psi,
    quantile_edges,
    realised_performance,
)

values = arrays(
    np.float64,
    st.integers(1, 300),
    elements=st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1.0, np.nan])),
)


# No deadline: the first example pays for imports and JIT warm-up, over 200 ms on a busy box.
@settings(deadline=None)
@given(values, st.integers(2, 20))
def test_psi_of_a_sample_against_itself_is_zero(sample: np.ndarray, bins: int) -> None:
    assert psi(sample, sample, bins) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=200)
@given(values, values, st.integers(2, 20))
def test_psi_is_never_negative(reference: np.ndarray, current: np.ndarray, bins: int) -> None:
    assert psi(reference, current, bins) >= 0.0


@given(values, st.integers(2, 20))
def test_bin_shares_sum_to_one(sample: np.ndarray, bins: int) -> None:
    shares = bin_shares(sample, quantile_edges(sample, bins))
    assert shares.sum() == pytest.approx(1.0)


def test_quantile_bins_hold_equal_shares_of_a_continuous_reference() -> None:
    reference = np.random.default_rng(0).normal(size=10_000)
    shares = bin_shares(reference, quantile_edges(reference, 10))
    np.testing.assert_allclose(shares[:-1], 0.1, atol=1e-3)
    assert shares[-1] == 0.0  # nothing missing


def test_a_zero_inflated_feature_keeps_bins_for_its_non_zero_part() -> None:
    rng = np.random.default_rng(1)
    reference = np.where(rng.random(20_000) < 0.7, 0.0, rng.exponential(50, 20_000))
    edges = quantile_edges(reference, 10)
    assert edges[0] == 0.0 and edges.size >= 8
    tripled = np.where(reference > 0, reference * 3, 0.0)
    assert psi(reference, tripled) > 0.2  # 30 % of rows moved a long way
    same_law = np.where(rng.random(20_000) < 0.7, 0.0, rng.exponential(50, 20_000))
    assert psi(reference, same_law) < 0.02  # a fresh draw of the same law: no flag


def test_large_samples_of_the_same_law_are_not_flagged() -> None:
    """Unlike a significance test, PSI does not grow with n when nothing moved."""
    rng = np.random.default_rng(2)
    assert psi(rng.normal(size=200_000), rng.normal(size=200_000)) < 0.001
    assert psi(rng.normal(size=200_000), rng.normal(0.5, 1, size=200_000)) > 0.2


def test_new_categories_are_the_share_of_unseen_values() -> None:
    reference = pl.Series(["a", "b", None])
    current = pl.Series(["a", "c", "c", None])
    assert new_category_share(reference, current) == pytest.approx(0.5)


def test_drift_table_flags_only_what_moved_beyond_the_limits() -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    reference = pl.DataFrame({
        "steady": rng.normal(size=n), "shifted": rng.normal(size=n),
        "emptier": rng.normal(size=n), "channel": rng.choice(["web", "app"], n),
    })  # fmt: skip
    current = pl.DataFrame({
        "steady": rng.normal(size=n), "shifted": rng.normal(1.0, 1, size=n),
        "emptier": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        "channel": rng.choice(["web", "app", "kiosk"], n),
    })  # fmt: skip
    table = {
        d.column: d
        for d in drift_table(reference, current, reference.columns, MonitoringSettings())
    }
    assert table["steady"].flags == ()
    assert table["shifted"].flags == ("psi",)
    assert "missing" in table["emptier"].flags
    assert table["emptier"].missing_current == pytest.approx(0.2, abs=0.02)
    assert "new_categories" in table["channel"].flags
    with pytest.raises(ValueError, match="absent"):
        drift_table(reference, current, ["nope"], MonitoringSettings())


def test_realised_performance_of_a_perfect_ranking() -> None:
    score = np.linspace(0.01, 0.99, 50)
    result = realised_performance("run", score > 0.5, score, 10)
    assert result.roc_auc == 1.0
    assert result.positives == 25 and result.visitors == 50
    assert sum(rows for _, _, rows in result.reliability) == 50
    assert np.isnan(realised_performance("run", np.zeros(5), score[:5], 10).roc_auc)


@settings(max_examples=60, deadline=None)
@given(
    scores=arrays(np.float64, st.integers(1, 300), elements=st.floats(0, 1)),
    seed=st.integers(0, 2**16),
)
def test_realised_ece_is_the_training_reports_ece(scores: np.ndarray, seed: int) -> None:
    """A realised ECE is only comparable with the model's test ECE (training's report) if
    the two are computed the same way: both come from ``contract.metrics``."""
    from training.metrics import evaluate_probabilities

    labels = (np.random.default_rng(seed).random(scores.size) < scores).astype(np.int64)
    realised = realised_performance("run", labels, scores, 10).ece
    # evaluate_probabilities clips probabilities to [1e-15, 1 - 1e-15] first.
    assert realised == pytest.approx(evaluate_probabilities(labels, scores)["ece"], abs=1e-12)
