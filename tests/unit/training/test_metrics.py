"""Metrics agree with scikit-learn; ECE, lift and capture on hand-checked examples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from training.metrics import (
    evaluate_probabilities,
    expected_calibration_error,
    lift_and_capture,
    top_share_mask,
)


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    probability = rng.beta(1, 12, 4000)
    return (rng.random(4000) < probability).astype(np.int64), probability


def test_metrics_match_scikit_learn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    label, probability = scored
    metrics = evaluate_probabilities(label, probability)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(label, probability))
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(label, probability))
    assert metrics["log_loss"] == pytest.approx(log_loss(label, probability))
    assert metrics["brier"] == pytest.approx(brier_score_loss(label, probability))
    assert metrics["rows"] == 4000


def test_ece_is_small_for_calibrated_and_large_for_shifted_scores(
    scored: tuple[np.ndarray, np.ndarray],
) -> None:
    label, probability = scored
    assert expected_calibration_error(label, probability) < 0.01
    assert expected_calibration_error(label, np.clip(probability + 0.1, 0, 1)) > 0.09


def test_ece_by_hand() -> None:
    # Two equal-count bins: {0.1, 0.2} with one positive, {0.7, 0.8} with one positive.
    label = np.array([0, 1, 0, 1])
    probability = np.array([0.1, 0.2, 0.7, 0.8])
    expected = (abs(0.5 - 0.15) * 2 + abs(0.5 - 0.75) * 2) / 4
    assert expected_calibration_error(label, probability, n_bins=2) == pytest.approx(expected)


def test_lift_and_capture_by_hand() -> None:
    label = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    probability = np.linspace(1, 0, 10)  # rows in descending score order
    assert top_share_mask(probability, 0.2).tolist() == [True, True] + [False] * 8
    lift, capture = lift_and_capture(label, probability, 0.2)
    assert lift == pytest.approx(1.0 / 0.3)
    assert capture == pytest.approx(2 / 3)


def test_one_class_gives_nan_ranking_metrics() -> None:
    metrics = evaluate_probabilities(np.zeros(5, dtype=int), np.full(5, 0.1))
    assert np.isnan(metrics["roc_auc"])
    assert metrics["log_loss"] == pytest.approx(-np.log(0.9))
