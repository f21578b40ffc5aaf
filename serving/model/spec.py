"""Turn feature matrices into calibrated probabilities, fast, from the registered artifact.

Training logs one MLflow pyfunc model. Beside the pyfunc it stores a *scoring spec*
(``scoring.json``, documented in ``contract.scoring``): model kind, feature columns in matrix
order, calibrator, the model contract (the feature configuration its inputs are computed
with, ``contract.model``) and for LightGBM the booster text file. The pyfunc costs ~3 ms a
row; this module reads the same spec with the same evaluator (``contract.scoring.Scorer``)
and scores a row in tens of microseconds (``tests/integration/serving/test_model.py`` holds
it to the pyfunc with ``assert_allclose``). Serving never imports ``training``: the spec file
is the contract.

LightGBM raw scores come from a compiled predictor (``lleaves``, cached per booster text so a
model version compiles once per machine, in a child process: ``serving.model.compiled``) or,
where lleaves is missing or not wanted, from ``Booster.predict``; both are exact to ~1e-15.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from contract.model import ModelContract
from contract.scoring import SPEC_FILE, Scorer, largest_contributions
from features.definitions import FeatureConfig
from serving.model.compiled import compiled_model
from serving.settings import PredictorKind

log = logging.getLogger(__name__)

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


@dataclass
class SpecModel:
    """A scoring spec loaded for serving; satisfies ``ScoringModel``. Its ``contract`` says
    how its inputs are computed: every path that scores with it builds features with
    ``feature_config``."""

    scorer: Scorer
    contract: ModelContract
    compiled: Any = None  # lleaves.Model returning raw scores, when available

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
        """``ContractError`` (a ``ValueError``) for a spec that does not say how its inputs
        are computed: such a model is never scored with defaults."""
        contract = ModelContract.from_spec(spec)
        contract.serving_config()
        scorer = Scorer.from_parts(spec, booster_text)
        compiled = None
        if scorer.kind == "lightgbm" and predictor != "booster" and cache_dir is not None:
            assert booster_text is not None  # Scorer.from_parts requires it
            try:
                compiled = compiled_model(
                    booster_text, cache_dir, timeout_seconds=compile_timeout_seconds
                )
            except ImportError:
                if predictor == "lleaves":
                    raise
                log.warning("lleaves is not installed: scoring with Booster.predict")
        return cls(scorer, contract, compiled)

    @property
    def spec(self) -> dict[str, Any]:
        return self.scorer.spec

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.scorer.feature_columns)

    @property
    def feature_config(self) -> FeatureConfig:
        """How this model's inputs are computed from events (its training configuration)."""
        return self.contract.serving_config()

    def parts(self) -> tuple[dict[str, Any], str | None]:
        """(scoring spec, booster text): what ``from_parts`` rebuilds this model from, e.g.
        on a Spark executor."""
        return self.spec, self.scorer.booster_text()

    @property
    def kind(self) -> str:
        return self.scorer.kind

    @property
    def predictor(self) -> str:
        if self.kind == "logistic":
            return "numpy"
        return "lleaves" if self.compiled is not None else "booster"

    def raw_score(self, features: Matrix, *, threads: int = 1) -> Matrix:
        if self.compiled is None:
            return self.scorer.raw_score(features, threads=threads)
        matrix = np.ascontiguousarray(features, dtype=np.float64)
        return np.asarray(self.compiled.predict(matrix, n_jobs=threads), dtype=np.float64)

    def predict_proba(self, features: Matrix, *, threads: int = 1) -> Matrix:
        return self.scorer.calibrate(self.raw_score(features, threads=threads))

    def contributions(self, features: Matrix, *, threads: int = 1) -> Matrix:
        return self.scorer.contributions(features, threads=threads)


def top_contributions(
    model: ScoringModel, features: Matrix, k: int, *, threads: int = 1
) -> tuple[npt.NDArray[np.int64], Matrix]:
    """Per row, the column indices of the ``k`` features moving the raw score most, and
    their contributions (largest magnitude first)."""
    return largest_contributions(model.contributions(features, threads=threads), k)
