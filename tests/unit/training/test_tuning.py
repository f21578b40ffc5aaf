"""Optuna tuning is off by default and bounded by trials when on."""

from __future__ import annotations

from tests.model.synthetic_snapshots import FEATURES, snapshot_stack
from training.data import feature_matrix
from training.settings import TrainingSettings
from training.tuning import tune_lightgbm


def test_tuning_is_off_by_default_and_bounded_when_on() -> None:
    snapshots = snapshot_stack(visitors=400, cutoffs=2)
    data = (feature_matrix(snapshots, FEATURES), snapshots["label"].to_numpy())
    settings = TrainingSettings(n_estimators=20, num_threads=1)
    assert tune_lightgbm(data, data, FEATURES, settings) == {}
    tuned = tune_lightgbm(data, data, FEATURES, settings.model_copy(update={"tuning_trials": 2}))
    assert set(tuned) == {"num_leaves", "min_child_samples", "feature_fraction", "lambda_l2"}
