"""Metrics agree with scikit-learn; lift and capture on hand-checked examples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from training.metrics import (
    evaluate_probabilities,
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
