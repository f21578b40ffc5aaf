"""Uplift evaluation on constructed data where the persuadable are known."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from training.uplift import (
    UpliftModelSettings,
    cross_fit,
    design_matrix,
    qini_coefficient,
    qini_curve,
    qini_difference_interval,
    targeting_table,
    uplift_at_k,
)


def test_qini_curve_counts_incremental_outcomes() -> None:
    # Ranked: two treated converters, then a control converter and a treated non-converter.
    score = np.array([4.0, 3.0, 2.0, 1.0])
    treated = np.array([1, 1, 0, 1])
    outcome = np.array([1, 1, 1, 0])
    share, qini = qini_curve(score, treated, outcome)
    np.testing.assert_allclose(share, [0, 0.25, 0.5, 0.75, 1.0])
    # n=3: Y_t=2, Y_c=1, N_t=2, N_c=1 -> 2 - 1*2 = 0; n=4: 2 - 1*3 = -1.
    np.testing.assert_allclose(qini, [0, 1, 2, 0, -1])


def test_qini_curve_averages_over_tied_scores() -> None:
    """Four units with one score: the curve is a straight line to the group's end, whatever
    order the rows come in (before, it followed the row order: a control converter first
    gave a different curve and coefficient than a treated converter first)."""
    treated = np.array([1, 0, 1, 0])
    outcome = np.array([1, 1, 0, 0])
    tied = np.zeros(4)
    curves = [qini_curve(tied, treated[order], outcome[order])[1] for order in
              ([0, 1, 2, 3], [1, 0, 3, 2], [3, 2, 1, 0])]  # fmt: skip
    for curve in curves:
        # At n=4: Y_t=1, Y_c=1, N_t=N_c=2 -> 0; straight from 0 to 0.
        np.testing.assert_allclose(curve, [0, 0, 0, 0, 0])
    # A tie inside a ranking: the top unit is decided, the next two are not.
    score, arm, label = np.array([3.0, 1.0, 1.0]), np.array([1, 1, 0]), np.array([1, 0, 1])
    forward = qini_curve(score, arm, label)[1]
    backward = qini_curve(score[::-1], arm[::-1], label[::-1])[1]
    # n=1: 1; n=3: Y_t=1, Y_c=1, N_t=2, N_c=1 -> -1; n=2 halfway: 0.
    np.testing.assert_allclose(forward, [0, 1, 0, -1])
    np.testing.assert_allclose(backward, forward)
    assert qini_coefficient(score, arm, label) == qini_coefficient(score[::-1], arm[::-1],
                                                                   label[::-1])  # fmt: skip


def test_uplift_at_k_is_the_rate_difference_in_the_top_share() -> None:
    score = np.arange(10.0)[::-1]
    treated = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    outcome = np.array([1, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    assert uplift_at_k(score, treated, outcome, 0.4) == pytest.approx(1.0 - 0.5)
    assert uplift_at_k(score, treated, outcome, 1.0) == pytest.approx(0.4 - 0.2)
    assert np.isnan(uplift_at_k(score, treated, outcome, 0.1))


def _persuadable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Buying is likeliest when x0 is high; the contact works only when x1 > 0."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 3))
    treated = rng.random(n) < 0.5
    base = 0.02 + 0.10 * (features[:, 0] > 0.5)
    effect = 0.08 * (features[:, 1] > 0)
    outcome = rng.random(n) < base + effect * treated
    return features, treated, outcome.astype(int), effect


def test_uplift_ranking_beats_propensity_ranking_when_they_disagree() -> None:
    features, treated, outcome, effect = _persuadable(20_000, seed=0)
    scores = cross_fit(features, treated, outcome, UpliftModelSettings(n_estimators=100))
    assert np.corrcoef(scores.uplift, effect)[0, 1] > 0.5
    by_uplift = qini_coefficient(scores.uplift, treated, outcome)
    by_propensity = qini_coefficient(scores.propensity, treated, outcome)
    assert by_uplift > 0.003 and by_uplift > 3 * abs(by_propensity)
    top = uplift_at_k(scores.uplift, treated, outcome, 0.3)
    assert top == pytest.approx(0.08, abs=0.02)
    assert uplift_at_k(scores.propensity, treated, outcome, 0.3) < top - 0.03


def test_perfect_ranking_has_the_largest_qini() -> None:
    _, treated, outcome, effect = _persuadable(10_000, seed=1)
    noise = np.random.default_rng(2).random(len(effect))
    assert qini_coefficient(effect + noise * 1e-3, treated, outcome) > qini_coefficient(
        noise, treated, outcome
    )
    assert qini_coefficient(-effect + noise * 1e-3, treated, outcome) < 0


def test_design_matrix_one_hot_encodes_categories() -> None:
    units = pl.DataFrame({"recency": [1, 5], "channel": ["Web", "Phone"]})
    matrix, names = design_matrix(units, ["recency"], ["channel"])
    assert names == ["recency", "channel_Phone", "channel_Web"]
    np.testing.assert_array_equal(matrix, [[1, 0, 1], [5, 1, 0]])


def test_targeting_table_has_one_row_per_ranking() -> None:
    _, treated, outcome, effect = _persuadable(5_000, seed=3)
    table = targeting_table({"truth": effect, "reversed": -effect}, treated, outcome, (0.5, 1.0))
    assert table.columns == ["ranking", "qini_coefficient", "uplift_at_0.5", "uplift_at_1"]
    truth, reversed_ = table.rows()
    assert truth[1] > 0 > reversed_[1]
    assert truth[2] > reversed_[2] and truth[3] == pytest.approx(reversed_[3])


def test_qini_difference_interval_separates_a_good_ranking_from_a_bad_one() -> None:
    _, treated, outcome, effect = _persuadable(5_000, seed=4)
    noise = np.random.default_rng(5).random(len(effect))
    point, low, high = qini_difference_interval(
        effect + 1e-3 * noise, noise, treated, outcome, resamples=100
    )
    assert 0 < low < point < high
    same = qini_difference_interval(noise, noise, treated, outcome, resamples=20)
    assert same == (0.0, 0.0, 0.0)
