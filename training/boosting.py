"""LightGBM with early stopping on the validation set and business-fact monotone constraints.

Class imbalance is left alone on purpose: no ``scale_pos_weight`` or ``is_unbalance``, which
would distort the probabilities; ranking does not need them and calibration follows anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from training.settings import TrainingSettings


def monotone_vector(feature_columns: Sequence[str], constraints: Mapping[str, int]) -> list[int]:
    """LightGBM's per-column constraint list from a name -> direction mapping."""
    unknown = sorted(set(constraints) - set(feature_columns))
    if unknown:
        raise ValueError(f"monotone constraints name unknown features {unknown}")
    return [int(constraints.get(name, 0)) for name in feature_columns]


def base_params(settings: TrainingSettings) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_child_samples": settings.min_child_samples,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": settings.num_threads,
        "seed": settings.seed,
        "deterministic": True,
        "verbosity": -1,
    }


def fit_booster(
    train: tuple[npt.NDArray[np.float64], npt.ArrayLike],
    validation: tuple[npt.NDArray[np.float64], npt.ArrayLike],
    feature_columns: Sequence[str],
    settings: TrainingSettings,
    overrides: Mapping[str, Any] | None = None,
) -> lgb.Booster:
    """Boost up to ``n_estimators`` rounds, keeping the round with the best validation loss."""
    params = {**base_params(settings), **(overrides or {})}
    constraints = monotone_vector(feature_columns, settings.monotone_constraints)
    if any(constraints):
        params["monotone_constraints"] = constraints
        params["monotone_constraints_method"] = "intermediate"
    names = list(feature_columns)
    train_set = lgb.Dataset(
        train[0], label=np.asarray(train[1]), feature_name=names, free_raw_data=False
    )
    valid_set = lgb.Dataset(validation[0], label=np.asarray(validation[1]), reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=settings.n_estimators,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
    )


def gain_importance(booster: lgb.Booster) -> dict[str, float]:
    """Total split gain per feature, largest first."""
    gains = booster.feature_importance(importance_type="gain")
    pairs = sorted(zip(booster.feature_name(), gains, strict=True), key=lambda p: -p[1])
    return {name: float(gain) for name, gain in pairs}
