"""A model trained on simulated events against the ideal observer of the same events: it may
come close, it must not beat it by more than noise (if it did, the ideal observer would be
missing something the generator makes depend on the latent rate, intent or churn)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from features.definitions import FEATURE_COLUMNS
from features.simulation import SimulationConfig, reference_probabilities, simulate
from features.snapshots import SnapshotConfig, build_snapshots
from training.pipeline import fit_and_evaluate
from training.settings import TrainingSettings

CONFIG = SimulationConfig(visitors=40_000, days=90, seed=21)
WEEK = timedelta(days=7)


def _auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil (1982): the standard error of an AUC estimate."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return float(np.sqrt(variance))


@pytest.mark.slow
def test_the_model_does_not_beat_the_ideal_observer() -> None:
    data = simulate(CONFIG)
    snapshot_config = SnapshotConfig(
        start=CONFIG.start + timedelta(days=30), end=CONFIG.end - WEEK, slide=WEEK,
        lookback=timedelta(days=30), horizon=WEEK,
    )  # fmt: skip
    frame = build_snapshots(data.events, snapshot_config)
    assert isinstance(frame, pl.LazyFrame)
    snapshots = frame.collect()
    test_times = snapshot_config.snapshot_times()[-2:]
    reference = reference_probabilities(
        data.truth, data.events, test_times, WEEK, CONFIG
    ).with_columns(pl.col("as_of").cast(snapshots.schema["as_of"]))
    settings = TrainingSettings(n_estimators=200, num_threads=1, test_snapshots=2)
    outcome = fit_and_evaluate(
        snapshots, FEATURE_COLUMNS, settings, horizon=WEEK, reference=reference
    )
    found = outcome.lineage["reference"]
    positives = int(outcome.split.test.label.sum())
    negatives = outcome.split.test.label.size - positives
    assert positives > 100
    best_model = max(parts["test"]["roc_auc"] for parts in outcome.table.values())
    noise = _auc_standard_error(found["ideal_roc_auc"], positives, negatives)
    assert best_model < found["ideal_roc_auc"] + 2 * noise
    assert found["ideal_roc_auc"] < found["as_of_roc_auc"] < found["true_roc_auc"]
    # Calibrated and sharper than any model: no candidate's log loss is lower.
    best_log_loss = min(parts["test"]["log_loss"] for parts in outcome.table.values())
    assert found["ideal_log_loss"] < best_log_loss
    # Learning pays: the chosen model gets most of the way.
    assert found["fraction_of_ideal_auc"] > 0.85
