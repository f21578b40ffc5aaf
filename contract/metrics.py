"""Calibration of probabilities against outcomes, computed one way for training's report and
for monitoring's realised performance, so that the two ECEs mean the same thing."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: (mean probability, observed rate, rows) of one bin.
Bin = tuple[float, float, int]


def reliability_bins(label: npt.ArrayLike, probability: npt.ArrayLike, bins: int) -> list[Bin]:
    """(mean probability, observed rate, rows) per equal-count probability bin, empty bins left
    out. Equal-count (quantile) bins, because propensities are skewed: equal-width bins would
    put almost every visitor in the first bin and hide miscalibration where the mass is."""
    y = np.asarray(label, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, min(bins, max(len(p), 1)))
    return [(float(p[i].mean()), float(y[i].mean()), len(i)) for i in parts if len(i)]


def expected_calibration_error(
    label: npt.ArrayLike, probability: npt.ArrayLike, bins: int = 10
) -> float:
    """Mean |observed rate - mean probability| over equal-count bins, weighted by bin size
    (0 for no rows)."""
    table = reliability_bins(label, probability, bins)
    total = sum(rows for _, _, rows in table)
    return float(sum(rows * abs(rate - mean) for mean, rate, rows in table) / max(total, 1))
