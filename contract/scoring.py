"""Turn a feature matrix into calibrated probabilities from a plain *scoring spec*.

Self-contained on purpose (numpy, and lightgbm for boosted models; no project imports but
``contract.calibration``): it is the one evaluator behind training's evaluation, the logged
pyfunc model (pickled into it by value) and serving, which adds a compiled predictor for the
raw scores of LightGBM (``serving.model.spec``).

Spec (``scoring.json`` in the logged model's artifacts)::

    format_version    2 (1: the same without the contract fields, see ``contract.model``)
    kind              "lightgbm" | "logistic"
    feature_columns   model inputs, in matrix order (select by these names)
    calibrator        see ``contract.calibration``
    booster_file      (lightgbm) LightGBM model text; raw = Booster.predict(X, raw_score=True)
    logistic          (logistic) {"fill", "indicator_columns", "mean", "scale", "coef",
                      "intercept"}: impute NaN with fill, append 0/1 missing indicators of
                      indicator_columns, z = (arcsinh(x) - mean) / scale, raw = z @ coef + b
    feature_config    how the inputs are computed from events (``contract.model``)
    label             what the probability is of (``contract.model``)

``raw`` is the model's log-odds-like score; the calibrator maps it to a probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from contract.calibration import apply_calibrator

FORMAT_VERSION = 2
#: Versions whose scoring part this evaluator reads (1 lacks only the contract fields).
READABLE_VERSIONS = frozenset({1, 2})
SPEC_FILE = "scoring.json"
BOOSTER_FILE = "booster.txt"
Matrix = npt.NDArray[np.float64]


class _Linear:
    """The ``logistic`` spec as arrays, converted once."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.fill = np.asarray(spec["fill"], dtype=np.float64)
        self.indicators = list(spec["indicator_columns"])
        self.mean = np.asarray(spec["mean"], dtype=np.float64)
        self.scale = np.asarray(spec["scale"], dtype=np.float64)
        self.coef = np.asarray(spec["coef"], dtype=np.float64)
        self.intercept = float(spec["intercept"])

    def design(self, features: Matrix) -> Matrix:
        filled = np.where(np.isnan(features), self.fill, features)
        flags = np.isnan(features[:, self.indicators]).astype(np.float64)
        return np.asarray((np.arcsinh(np.hstack([filled, flags])) - self.mean) / self.scale)

    def raw(self, features: Matrix) -> Matrix:
        return np.asarray(self.design(features) @ self.coef + self.intercept)

    def contributions(self, features: Matrix) -> Matrix:
        terms = self.design(features) * self.coef
        n = features.shape[1]
        parts = terms[:, :n].copy()
        # A missing-value indicator belongs to the feature it flags.
        for position, column in enumerate(self.indicators):
            parts[:, column] += terms[:, n + position]
        return np.hstack([parts, np.full((features.shape[0], 1), self.intercept)])


class Scorer:
    """A loaded spec: ``probability(features)`` with columns in ``feature_columns`` order.

    ``threads``: LightGBM threads for a call (None: LightGBM's default, every core)."""

    def __init__(self, spec: dict[str, Any], booster: Any = None) -> None:
        self.spec = spec
        self.booster = booster  # lightgbm.Booster for kind "lightgbm"
        self._linear = _Linear(spec["logistic"]) if spec["kind"] == "logistic" else None

    @classmethod
    def from_parts(cls, spec: dict[str, Any], booster_text: str | None = None) -> Scorer:
        if spec.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported scoring spec version {spec.get('format_version')!r}")
        if spec["kind"] == "lightgbm":
            import lightgbm

            if booster_text is None:
                raise ValueError("a lightgbm scoring spec needs its booster text")
            return cls(spec, lightgbm.Booster(model_str=booster_text))
        if spec["kind"] != "logistic":
            raise ValueError(f"unknown model kind {spec['kind']!r}")
        return cls(spec)

    @property
    def feature_columns(self) -> list[str]:
        return list(self.spec["feature_columns"])

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])

    def booster_text(self) -> str | None:
        return None if self.booster is None else str(self.booster.model_to_string())

    def raw_score(self, features: Matrix, *, threads: int | None = None) -> Matrix:
        matrix = np.ascontiguousarray(features, dtype=np.float64)
        if self._linear is not None:
            return self._linear.raw(matrix)
        options = {} if threads is None else {"num_threads": threads}
        raw = self.booster.predict(matrix, raw_score=True, **options)
        return np.asarray(raw, dtype=np.float64)

    def calibrate(self, raw: npt.ArrayLike) -> Matrix:
        return apply_calibrator(self.spec["calibrator"], raw)

    def probability(self, features: Matrix, *, threads: int | None = None) -> Matrix:
        return self.calibrate(self.raw_score(features, threads=threads))

    def contributions(self, features: Matrix, *, threads: int | None = None) -> Matrix:
        """Per-feature additive parts of the raw score, bias last (LightGBM ``pred_contrib``
        layout): rows sum to ``raw_score``."""
        matrix = np.ascontiguousarray(features, dtype=np.float64)
        if self._linear is not None:
            return self._linear.contributions(matrix)
        options = {} if threads is None else {"num_threads": threads}
        parts = self.booster.predict(matrix, pred_contrib=True, **options)
        return np.asarray(parts, dtype=np.float64)


def largest_contributions(contributions: Matrix, k: int) -> tuple[npt.NDArray[np.int64], Matrix]:
    """Per row of ``contributions`` (bias last), the column indices of the ``k`` features
    moving the raw score most, and their contributions (largest magnitude first)."""
    parts = contributions[:, :-1]
    k = min(k, parts.shape[1])
    order = np.argsort(-np.abs(parts), axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(parts, order, axis=1)
