"""Apply a calibrator: a model's raw score to a purchase probability.

Self-contained (numpy only) on purpose: it is pickled by value into the logged pyfunc model
with ``contract.scoring``, so loading a model needs no project code. Fitting a calibrator is
training's (``training.calibration``); the shapes it writes are these:

    {"method": "sigmoid", "slope": a, "intercept": b}
        p = 1 / (1 + exp(-(a * raw + b)))
    {"method": "isotonic", "x": [...], "y": [...], "floor": f, "ceiling": c}
        p = clip(interp(raw, x, y), f, c)   (constant beyond x's range)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def apply_calibrator(calibrator: dict[str, Any], raw: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Probabilities from raw scores under a calibrator spec."""
    score = np.asarray(raw, dtype=np.float64)
    if calibrator["method"] == "sigmoid":
        z = calibrator["slope"] * score + calibrator["intercept"]
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)
    if calibrator["method"] == "isotonic":
        mapped = np.interp(score, calibrator["x"], calibrator["y"])
        return np.asarray(np.clip(mapped, calibrator["floor"], calibrator["ceiling"]))
    raise ValueError(f"unknown calibration method {calibrator['method']!r}")
