"""Baselines trained and reported beside the boosted model: a recency–frequency rule (no
learning) and a logistic regression on the same features.

Both return raw scores (higher means likelier to buy); calibration happens elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from contract.scoring import FORMAT_VERSION

#: Recency used for visitors with nothing to measure (null), in days: "never".
NEVER_DAYS = 10_000.0


def recency_frequency_score(recency_days: npt.ArrayLike, frequency: npt.ArrayLike) -> Any:
    """The classic rule: more activity and more recent activity rank higher.

    ``log1p(frequency) - log1p(recency_days)``; a null recency counts as ``NEVER_DAYS`` and a
    null frequency as 0. No parameter is learned.
    """
    recency = np.nan_to_num(np.asarray(recency_days, dtype=np.float64), nan=NEVER_DAYS)
    count = np.nan_to_num(np.asarray(frequency, dtype=np.float64), nan=0.0)
    return np.log1p(np.maximum(count, 0.0)) - np.log1p(np.maximum(recency, 0.0))


def logistic_pipeline(seed: int) -> Pipeline:
    """Median imputation with missing indicators, arcsinh (counts are heavy-tailed; arcsinh
    is log-like and defined at 0 and below), standardisation, L2 logistic regression."""
    return Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("compress", FunctionTransformer(np.arcsinh)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=1.0, max_iter=2000, random_state=seed)),
        ]
    )


def fit_logistic(features: npt.NDArray[np.float64], label: npt.ArrayLike, seed: int) -> Pipeline:
    return logistic_pipeline(seed).fit(features, np.asarray(label))


def logistic_spec(pipeline: Pipeline, feature_columns: Sequence[str]) -> dict[str, Any]:
    """The fitted pipeline as the plain ``logistic`` scoring spec of ``contract.scoring``."""
    imputer: SimpleImputer = pipeline.named_steps["impute"]
    scaler: StandardScaler = pipeline.named_steps["scale"]
    model: LogisticRegression = pipeline.named_steps["model"]
    indicator = imputer.indicator_
    return {
        "format_version": FORMAT_VERSION,
        "kind": "logistic",
        "feature_columns": list(feature_columns),
        "logistic": {
            "fill": imputer.statistics_.tolist(),
            "indicator_columns": [] if indicator is None else indicator.features_.tolist(),
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
            "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0]),
        },
    }
