"""Calibrators: Platt recovers a known map; isotonic is guarded out of time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from contract.calibration import apply_calibrator
from training.calibration import fit_calibrator, tail_bounds
from training.settings import CalibrationMethod


def test_sigmoid_recovers_a_known_log_odds_map() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=20_000)
    label = (rng.random(raw.size) < 1 / (1 + np.exp(-(1.5 * raw - 2.0)))).astype(int)
    calibrator = fit_calibrator(raw, label, "sigmoid")
    assert calibrator["slope"] == pytest.approx(1.5, abs=0.1)
    assert calibrator["intercept"] == pytest.approx(-2.0, abs=0.1)


def _validation_without_low_buyers() -> tuple[np.ndarray, np.ndarray]:
    """Validation scores in [-1, 1]; nobody in the lowest fifth bought (a small-sample gap)."""
    rng = np.random.default_rng(1)
    raw = rng.uniform(-1, 1, 2000)
    label = (rng.random(raw.size) < 0.05 + 0.1 * (raw + 1)).astype(int)
    label[raw < -0.6] = 0
    return raw, label


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_scores_below_the_validation_range_do_not_collapse_to_zero(
    method: CalibrationMethod,
) -> None:
    raw, label = _validation_without_low_buyers()
    out_of_time = np.array([-5.0, -2.0, -1.0])  # later visitors scored below anything seen
    plain = IsotonicRegression(out_of_bounds="clip").fit(raw, label).predict(out_of_time)
    assert np.all(plain == 0.0)  # the failure being guarded against
    calibrator = fit_calibrator(raw, label, method, tail_share=0.05)
    probability = apply_calibrator(calibrator, out_of_time)
    assert np.all(probability > 0)
    assert probability[-1] > 0.005  # at the edge of the range: near the low tail's rate
    assert np.all(np.diff(probability) >= 0)


def test_isotonic_is_clipped_to_smoothed_tail_rates() -> None:
    raw, label = _validation_without_low_buyers()
    floor, ceiling = tail_bounds(raw, label, 0.05)
    assert floor == pytest.approx(1 / 102)  # 100 lowest rows, no buyer, add-one smoothing
    calibrator = fit_calibrator(raw, label, "isotonic", tail_share=0.05)
    probability = apply_calibrator(calibrator, np.linspace(-3, 3, 50))
    assert probability.min() == pytest.approx(floor)
    assert probability.max() <= ceiling


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown calibration"):
        fit_calibrator(np.zeros(4), np.array([0, 1, 0, 1]), "beta")  # type: ignore[arg-type]
