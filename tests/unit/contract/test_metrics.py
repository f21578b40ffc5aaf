"""Calibration error on hand-checked examples: the one ECE of training's report and of
monitoring's realised performance."""

from __future__ import annotations

import numpy as np
import pytest

from contract.metrics import expected_calibration_error, reliability_bins


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    probability = rng.beta(1, 12, 4000)
    return (rng.random(4000) < probability).astype(np.int64), probability


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
    assert expected_calibration_error(label, probability, bins=2) == pytest.approx(expected)


def test_calibration_error_is_zero_when_rates_match_scores() -> None:
    score = np.repeat([0.05, 0.25, 0.75], 100)
    label = np.concatenate([np.arange(100) < 5, np.arange(100) < 25, np.arange(100) < 75])
    # Three equal-count bins: one per score level, each with its exact purchase rate.
    assert expected_calibration_error(label, score, 3) == pytest.approx(0.0)
    assert expected_calibration_error(label, np.full(300, 0.9), 3) == pytest.approx(
        0.9 - label.mean()
    )
    assert expected_calibration_error(label, score[::-1], 3) == pytest.approx((0.7 + 0.0 + 0.7) / 3)


def test_no_rows_have_no_calibration_error() -> None:
    assert expected_calibration_error(np.zeros(0), np.zeros(0)) == 0.0
    assert reliability_bins(np.zeros(0), np.zeros(0), 10) == []
