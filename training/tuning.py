"""Optional Optuna search over LightGBM's main knobs, bounded by trials and wall-clock time.

Each trial boosts with early stopping and is judged by validation log loss; the test set is
never seen here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from training.boosting import fit_booster
from training.settings import TrainingSettings

log = logging.getLogger(__name__)


def suggest(trial: Any) -> dict[str, Any]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 400, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
    }


def tune_lightgbm(
    train: tuple[npt.NDArray[np.float64], npt.ArrayLike],
    validation: tuple[npt.NDArray[np.float64], npt.ArrayLike],
    feature_columns: Sequence[str],
    settings: TrainingSettings,
) -> dict[str, Any]:
    """Best parameter overrides found; ``{}`` when tuning is off (no trials, no time)."""
    if settings.tuning_trials == 0 and settings.tuning_timeout_s is None:
        return {}
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        booster = fit_booster(train, validation, feature_columns, settings, suggest(trial))
        return float(booster.best_score["validation"]["binary_logloss"])

    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=settings.seed)
    )
    study.optimize(
        objective,
        n_trials=settings.tuning_trials or None,
        timeout=settings.tuning_timeout_s,
    )
    log.info(
        "tuning: %d trials, best validation log loss %.5f", len(study.trials), study.best_value
    )
    return dict(study.best_params)
