"""Turn a feature matrix into calibrated probabilities from a plain *scoring spec*.

Self-contained on purpose (numpy, and lightgbm for boosted models; no project imports): it
is the one implementation behind training's evaluation, the logged pyfunc model, and the
layout serving reads to score without the pyfunc overhead.

Spec (``scoring.json`` in the logged model's artifacts), ``format_version`` 1::

    kind              "lightgbm" | "logistic"
    feature_columns   model inputs, in matrix order (select by these names)
    calibrator        {"method": "sigmoid", "slope": a, "intercept": b}
                      p = 1 / (1 + exp(-(a * raw + b)))
                      {"method": "isotonic", "x": [...], "y": [...], "floor": f, "ceiling": c}
                      p = clip(interp(raw, x, y), f, c)   (constant beyond x's range)
    booster_file      (lightgbm) LightGBM model text; raw = Booster.predict(X, raw_score=True)
    logistic          (logistic) {"fill", "indicator_columns", "mean", "scale", "coef",
                      "intercept"}: impute NaN with fill, append 0/1 missing indicators of
                      indicator_columns, z = (arcsinh(x) - mean) / scale, raw = z @ coef + b

``raw`` is the model's log-odds-like score; the calibrator maps it to a probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 1
SPEC_FILE = "scoring.json"
BOOSTER_FILE = "booster.txt"
Matrix = npt.NDArray[np.float64]


def apply_calibrator(calibrator: dict[str, Any], raw: npt.ArrayLike) -> Matrix:
    """Probabilities from raw scores under a calibrator spec."""
    score = np.asarray(raw, dtype=np.float64)
    if calibrator["method"] == "sigmoid":
        z = calibrator["slope"] * score + calibrator["intercept"]
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)
    if calibrator["method"] == "isotonic":
        mapped = np.interp(score, calibrator["x"], calibrator["y"])
        return np.clip(mapped, calibrator["floor"], calibrator["ceiling"])
    raise ValueError(f"unknown calibration method {calibrator['method']!r}")


def _logistic_design(spec: dict[str, Any], features: Matrix) -> Matrix:
    filled = np.where(np.isnan(features), np.asarray(spec["fill"]), features)
    indicators = np.isnan(features[:, spec["indicator_columns"]]).astype(np.float64)
    design = np.arcsinh(np.hstack([filled, indicators]))
    return np.asarray((design - np.asarray(spec["mean"])) / np.asarray(spec["scale"]))


@dataclass
class Scorer:
    """A loaded spec: ``probability(features)`` with columns in ``feature_columns`` order."""

    spec: dict[str, Any]
    booster: Any = None  # lightgbm.Booster for kind "lightgbm"

    @classmethod
    def from_parts(cls, spec: dict[str, Any], booster_text: str | None = None) -> Scorer:
        if spec.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported scoring spec version {spec.get('format_version')}")
        if spec["kind"] == "lightgbm":
            import lightgbm

            if booster_text is None:
                raise ValueError("a lightgbm scoring spec needs its booster text")
            return cls(spec, lightgbm.Booster(model_str=booster_text))
        return cls(spec)

    @property
    def feature_columns(self) -> list[str]:
        return list(self.spec["feature_columns"])

    def raw_score(self, features: Matrix) -> Matrix:
        if self.spec["kind"] == "lightgbm":
            return np.asarray(self.booster.predict(features, raw_score=True), dtype=np.float64)
        linear = self.spec["logistic"]
        design = _logistic_design(linear, features)
        return np.asarray(design @ np.asarray(linear["coef"]) + linear["intercept"])

    def probability(self, features: Matrix) -> Matrix:
        return apply_calibrator(self.spec["calibrator"], self.raw_score(features))

    def contributions(self, features: Matrix) -> Matrix:
        """Per-feature additive parts of the raw score, bias last (LightGBM ``pred_contrib``
        layout): rows sum to ``raw_score``."""
        if self.spec["kind"] == "lightgbm":
            parts = self.booster.predict(features, pred_contrib=True)
            return np.asarray(parts, dtype=np.float64)
        linear = self.spec["logistic"]
        terms = _logistic_design(linear, features) * np.asarray(linear["coef"])
        n_features = features.shape[1]
        per_feature = terms[:, :n_features].copy()
        # A missing-value indicator belongs to the feature it flags.
        for position, column in enumerate(linear["indicator_columns"]):
            per_feature[:, column] += terms[:, n_features + position]
        bias = np.full((features.shape[0], 1), float(linear["intercept"]))
        return np.hstack([per_feature, bias])

    def top_contributions(self, features: Matrix, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per row, the ``k`` features that move the raw score most, with their parts."""
        parts = self.contributions(features)[:, :-1]
        names = self.feature_columns
        order = np.argsort(-np.abs(parts), axis=1, kind="stable")[:, :k]
        return [[(names[j], float(parts[i, j])) for j in row] for i, row in enumerate(order)]
