"""Fit a calibrator that maps a model's raw score to a probability, on the validation set.

Out-of-time safety: a plain isotonic map is flat beyond the validation range, and its lowest
step is 0 when the lowest-scored validation block had no buyer, so later visitors scored
below that range get probability 0 even though some of them buy (47% of CDNOW test customers
went there). Sigmoid (Platt) is smooth and never reaches 0 or 1; isotonic is clipped to a
floor and a ceiling estimated, with add-one smoothing, from the tails of the validation set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from training.settings import CalibrationMethod


def fit_sigmoid(raw: npt.ArrayLike, label: npt.ArrayLike) -> dict[str, Any]:
    """Platt scaling: a one-feature logistic regression on the raw score (barely
    regularised, so it is the maximum-likelihood fit)."""
    x = np.asarray(raw, dtype=np.float64).reshape(-1, 1)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(x, np.asarray(label))
    return {
        "method": "sigmoid",
        "slope": float(platt.coef_[0, 0]),
        "intercept": float(platt.intercept_[0]),
    }


def tail_bounds(raw: npt.ArrayLike, label: npt.ArrayLike, tail_share: float) -> tuple[float, float]:
    """(floor, ceiling): add-one smoothed positive rates of the lowest / highest scored tails."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    k = max(1, int(np.ceil(tail_share * len(x))))
    low, high = y[order[:k]], y[order[-k:]]
    floor = (low.sum() + 1) / (k + 2)
    ceiling = (high.sum() + 1) / (k + 2)
    return float(floor), float(max(ceiling, floor))


def fit_isotonic(raw: npt.ArrayLike, label: npt.ArrayLike, tail_share: float) -> dict[str, Any]:
    """Isotonic regression, constant beyond the fitted range, clipped to the tail bounds."""
    x = np.asarray(raw, dtype=np.float64)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(x, label)
    floor, ceiling = tail_bounds(x, label, tail_share)
    return {
        "method": "isotonic",
        "x": iso.X_thresholds_.tolist(),
        "y": iso.y_thresholds_.tolist(),
        "floor": floor,
        "ceiling": ceiling,
    }


def fit_calibrator(
    raw: npt.ArrayLike,
    label: npt.ArrayLike,
    method: CalibrationMethod = "sigmoid",
    tail_share: float = 0.05,
) -> dict[str, Any]:
    """A calibrator spec (see ``contract.calibration``) fitted on validation scores and labels."""
    if method == "sigmoid":
        return fit_sigmoid(raw, label)
    if method == "isotonic":
        return fit_isotonic(raw, label, tail_share)
    raise ValueError(f"unknown calibration method {method!r}")
