"""Knobs of model training that do not depend on the label horizon.

Nested into the application settings (``PROPENSITY_TRAINING__N_ESTIMATORS=400``); built at
the entry point and passed down, never read from the environment here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CalibrationMethod = Literal["sigmoid", "isotonic"]


class TrainingSettings(BaseModel):
    """How candidates are fitted, tuned, calibrated and compared."""

    model_config = ConfigDict(frozen=True)

    n_estimators: int = Field(500, gt=0, description="LightGBM boosting rounds at most")
    learning_rate: float = Field(0.05, gt=0, le=1, description="LightGBM shrinkage")
    num_leaves: int = Field(31, ge=2, description="LightGBM leaves per tree")
    min_child_samples: int = Field(50, ge=1, description="LightGBM rows per leaf at least")
    early_stopping_rounds: int = Field(
        50, ge=1, description="stop when validation log loss has not improved for this many"
    )
    num_threads: int = Field(2, ge=1, description="threads for LightGBM")
    calibration: CalibrationMethod = Field(
        "sigmoid", description="sigmoid (Platt) holds out of time; isotonic is clipped"
    )
    isotonic_tail_share: float = Field(
        0.05, gt=0, lt=0.5, description="isotonic floor/ceiling from this share of each tail"
    )
    tuning_trials: int = Field(0, ge=0, description="Optuna trials (0: no tuning)")
    tuning_timeout_s: float | None = Field(
        None, gt=0, description="Optuna wall-clock budget in seconds"
    )
    monotone_constraints: dict[str, Literal[-1, 1]] = Field(
        default_factory=dict,
        description="feature -> +1 (never lowers the score) or -1; business facts only",
    )
    test_snapshots: int = Field(1, ge=1, description="latest snapshots held out as test")
    validation_snapshots: int = Field(1, ge=1, description="snapshots before test: validation")
    recency_column: str = Field(
        "days_since_last_event", description="recency input of the recency-frequency rule"
    )
    frequency_column: str = Field(
        "n_sessions", description="frequency input of the recency-frequency rule"
    )
    candidates: tuple[Literal["lightgbm", "logistic"], ...] = Field(
        ("lightgbm", "logistic"), description="models eligible to become challenger"
    )
    promotion_min_auc_gain: float = Field(
        0.001, ge=0, lt=1, description="ROC-AUC a challenger must gain over the champion"
    )
    reference_rows: int = Field(
        20_000, ge=100, description="test rows (features, score) kept as the monitoring reference"
    )
    seed: int = 42
