"""Turn feature matrices into calibrated probabilities, fast, from the registered artifact.

Training logs one MLflow pyfunc model. Beside the pyfunc it stores a *scoring spec*
(``scoring.json``, ``format_version`` 1, documented in ``training/scoring.py``): model kind,
feature columns in matrix order, calibrator parameters, and for LightGBM the booster text
file. The pyfunc costs ~3 ms a row; this module reads the same spec and scores a row in tens
of microseconds, with the same probabilities (``tests/integration/serving/test_model.py``
holds it to the pyfunc with ``assert_allclose``). Serving never imports ``training``: the
spec file is the contract.

LightGBM raw scores come from a compiled predictor (``lleaves``, cached per booster text so a
model version compiles once per machine, in a child process: ``serving.model.compiled``) or, where
lleaves is missing or not wanted, from ``Booster.predict``; both are exact to ~1e-15.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from serving.model.compiled import compiled_model
from serving.settings import PredictorKind

log = logging.getLogger(__name__)

SPEC_FILE = "scoring.json"
FORMAT_VERSION = 1
Matrix = npt.NDArray[np.float64]
#: Default bound on one lleaves compile; ``ServingSettings.compile_timeout_seconds`` sets it.
COMPILE_TIMEOUT_SECONDS = 600.0


class ScoringModel(Protocol):
    """What serving needs of a model: named inputs, probabilities, explanations."""

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def predict_proba(self, features: Matrix, *, threads: int = 1) -> Matrix:
        """Calibrated purchase probabilities, one per row of ``features`` (columns in
        ``feature_names`` order, float64, NaN for missing)."""
        ...

    def contributions(self, features: Matrix, *, threads: int = 1) -> Matrix:
        """Additive parts of the raw score per feature, bias last (LightGBM ``pred_contrib``)."""
        ...


def apply_calibrator(calibrator: dict[str, Any], raw: Matrix) -> Matrix:
    if calibrator["method"] == "sigmoid":
        z = calibrator["slope"] * raw + calibrator["intercept"]
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)
    if calibrator["method"] == "isotonic":
        mapped = np.interp(raw, calibrator["x"], calibrator["y"])
        return np.clip(mapped, calibrator["floor"], calibrator["ceiling"])
    raise ValueError(f"unknown calibration method {calibrator['method']!r}")


class _Linear:
    """Logistic spec: impute, missing indicators, arcsinh, standardise, dot."""

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
        for position, column in enumerate(self.indicators):
            parts[:, column] += terms[:, n + position]
        return np.hstack([parts, np.full((features.shape[0], 1), self.intercept)])


@dataclass
class SpecModel:
    """A scoring spec loaded for serving; satisfies ``ScoringModel``."""

    spec: dict[str, Any]
    booster: Any = None  # lightgbm.Booster (kind "lightgbm"): contributions, fallback scores
    compiled: Any = None  # lleaves.Model returning raw scores, when available
    linear: _Linear | None = None

    @classmethod
    def from_directory(
        cls,
        directory: Path,
        *,
        predictor: PredictorKind = "auto",
        cache_dir: Path | None = None,
        compile_timeout_seconds: float = COMPILE_TIMEOUT_SECONDS,
    ) -> SpecModel:
        """Load ``scoring.json`` found anywhere under a downloaded model directory."""
        found = sorted(directory.rglob(SPEC_FILE))
        if not found:
            raise FileNotFoundError(
                f"{directory}: no {SPEC_FILE} in the model artifact; serving needs the scoring "
                "spec that training logs beside the pyfunc model"
            )
        spec = json.loads(found[0].read_text())
        booster_text = None
        if spec.get("kind") == "lightgbm":
            booster_text = (found[0].parent / spec["booster_file"]).read_text()
        return cls.from_parts(
            spec,
            booster_text,
            predictor=predictor,
            cache_dir=cache_dir,
            compile_timeout_seconds=compile_timeout_seconds,
        )

    @classmethod
    def from_parts(
        cls,
        spec: dict[str, Any],
        booster_text: str | None = None,
        *,
        predictor: PredictorKind = "auto",
        cache_dir: Path | None = None,
        compile_timeout_seconds: float = COMPILE_TIMEOUT_SECONDS,
    ) -> SpecModel:
        if spec.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported scoring spec version {spec.get('format_version')!r}")
        if spec["kind"] == "logistic":
            return cls(spec, linear=_Linear(spec["logistic"]))
        if spec["kind"] != "lightgbm" or booster_text is None:
            raise ValueError(f"cannot serve a {spec['kind']!r} spec without its booster text")
        import lightgbm

        booster = lightgbm.Booster(model_str=booster_text)
        compiled = None
        if predictor != "booster" and cache_dir is not None:
            try:
                compiled = compiled_model(
                    booster_text, cache_dir, timeout_seconds=compile_timeout_seconds
                )
            except ImportError:
                if predictor == "lleaves":
                    raise
                log.warning("lleaves is not installed: scoring with Booster.predict")
        return cls(spec, booster=booster, compiled=compiled)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.spec["feature_columns"])

    def parts(self) -> tuple[dict[str, Any], str | None]:
        """(scoring spec, booster text): what ``from_parts`` rebuilds this model from, e.g.
        on a Spark executor."""
        text = None if self.booster is None else str(self.booster.model_to_string())
        return self.spec, text

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])

    @property
    def predictor(self) -> str:
        if self.linear is not None:
            return "numpy"
        return "lleaves" if self.compiled is not None else "booster"

    def raw_score(self, features: Matrix, *, threads: int = 1) -> Matrix:
        matrix = np.ascontiguousarray(features, dtype=np.float64)
        if self.linear is not None:
            return self.linear.raw(matrix)
        if self.compiled is not None:
            return np.asarray(self.compiled.predict(matrix, n_jobs=threads), dtype=np.float64)
        return np.asarray(
            self.booster.predict(matrix, raw_score=True, num_threads=threads), dtype=np.float64
        )

    def predict_proba(self, features: Matrix, *, threads: int = 1) -> Matrix:
        return apply_calibrator(self.spec["calibrator"], self.raw_score(features, threads=threads))

    def contributions(self, features: Matrix, *, threads: int = 1) -> Matrix:
        matrix = np.ascontiguousarray(features, dtype=np.float64)
        if self.linear is not None:
            return self.linear.contributions(matrix)
        parts = self.booster.predict(matrix, pred_contrib=True, num_threads=threads)
        return np.asarray(parts, dtype=np.float64)


def top_contributions(
    model: ScoringModel, features: Matrix, k: int, *, threads: int = 1
) -> tuple[npt.NDArray[np.int64], Matrix]:
    """Per row, the column indices of the ``k`` features moving the raw score most, and
    their contributions (largest magnitude first)."""
    parts = model.contributions(features, threads=threads)[:, :-1]
    k = min(k, parts.shape[1])
    order = np.argsort(-np.abs(parts), axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(parts, order, axis=1)
