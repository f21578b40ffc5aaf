"""The logged model: a pyfunc that maps a feature table (columns by name) to calibrated
purchase probabilities, built from the scoring spec and booster in its own artifacts.

Pickled *by value* (see ``training.tracking``), so loading it needs mlflow, numpy, pandas
and lightgbm but not this project: serving never imports ``training``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from contract.scoring import Scorer

SPEC_ARTIFACT = "scoring_spec"
BOOSTER_ARTIFACT = "booster"


class PropensityModel(PythonModel):
    """``predict(features)`` -> P(purchase in the horizon), one float per row."""

    def load_context(self, context: PythonModelContext) -> None:
        spec = json.loads(Path(context.artifacts[SPEC_ARTIFACT]).read_text())
        booster = context.artifacts.get(BOOSTER_ARTIFACT)
        self.scorer = Scorer.from_parts(spec, Path(booster).read_text() if booster else None)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        frame = model_input[self.scorer.feature_columns]
        features = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        return self.scorer.probability(features)


UPLIFT_SPEC_ARTIFACT = "uplift_spec"
TREATED_ARTIFACT = "treated_booster"
CONTROL_ARTIFACT = "control_booster"


class UpliftModel(PythonModel):
    """``predict(features)`` -> P(purchase | contacted, x) − P(purchase | not contacted, x)."""

    def load_context(self, context: PythonModelContext) -> None:
        from contract.uplift import UpliftScorer

        spec = json.loads(Path(context.artifacts[UPLIFT_SPEC_ARTIFACT]).read_text())
        self.scorer = UpliftScorer(
            spec,
            Path(context.artifacts[TREATED_ARTIFACT]).read_text(),
            Path(context.artifacts[CONTROL_ARTIFACT]).read_text(),
        )

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        frame = model_input[list(self.scorer.feature_columns)]
        return self.scorer.uplift(frame.to_numpy(dtype=np.float64, na_value=np.nan))
