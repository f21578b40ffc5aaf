"""Behaviour of trained models: business-fact monotonicity, out-of-time calibration, and how
close the chosen model gets to the known true propensity."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from contract.scoring import Scorer
from tests.model.synthetic_snapshots import FEATURES, WEEK, snapshot_stack
from training.pipeline import Outcome, fit_and_evaluate
from training.settings import TrainingSettings

# One worker: the tests share one trained model.
pytestmark = pytest.mark.xdist_group("training_behaviour")
BASE = TrainingSettings(
    n_estimators=150,
    num_threads=1,
    candidates=("lightgbm",),
    monotone_constraints={"n_add_to_cart_7d": 1},
)


@pytest.fixture(scope="module")
def trained() -> Outcome:
    snapshots = snapshot_stack(visitors=2000, cutoffs=4, seed=1)
    return fit_and_evaluate(
        snapshots,
        FEATURES,
        BASE,
        horizon=WEEK,
        # p_as_of: any second reference; half of p_true ranks the same, fits worse.
        reference=snapshots.select("visitor_id", "as_of", "p_true", p_as_of=0.5 * pl.col("p_true")),
    )


def test_more_add_to_carts_never_lowers_the_score(trained: Outcome) -> None:
    scorer = Scorer.from_parts(trained.chosen.scoring_spec(), trained.chosen.booster_text)
    rows = trained.split.test.features[:300]
    column = FEATURES.index("n_add_to_cart_7d")
    previous = None
    for carts in range(0, 12):
        changed = rows.copy()
        changed[:, column] = carts
        probability = scorer.probability(changed)
        if previous is not None:
            assert np.all(probability >= previous - 1e-12)
        previous = probability


def test_chosen_model_reaches_most_of_the_true_propensity_auc(trained: Outcome) -> None:
    reference = trained.lineage["reference"]
    assert reference["fraction_of_true_auc"] > 0.9
    assert reference["as_of_roc_auc"] == pytest.approx(reference["true_roc_auc"])
    assert reference["fraction_of_as_of_auc"] == pytest.approx(reference["fraction_of_true_auc"])
    assert reference["as_of_log_loss"] > reference["true_log_loss"]
    assert (
        trained.table["lightgbm"]["test"]["roc_auc"]
        > trained.table["rule"]["test"]["roc_auc"] - 0.02
    )


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_holds_under_drift(method: str) -> None:
    """Activity grows each week, so the test week differs from validation; calibrated
    probabilities must stay near the observed rate and never collapse to 0 (the isotonic
    out-of-range guard itself: ``tests/unit/training/test_calibration.py``)."""
    snapshots = snapshot_stack(visitors=2000, cutoffs=4, seed=2, shift=0.6)
    settings = BASE.model_copy(update={"calibration": method})
    outcome = fit_and_evaluate(snapshots, FEATURES, settings, horizon=WEEK)
    chosen = outcome.chosen
    probability = chosen.probability("test")
    assert np.all(probability > 0)
    test = outcome.table[chosen.name]["test"]
    assert abs(np.mean(probability) - test["positive_rate"]) < 0.5 * test["positive_rate"]
    uncalibrated = outcome.table[chosen.name]["test_uncalibrated"]
    assert test["log_loss"] < uncalibrated["log_loss"] + 0.02


def test_logistic_against_a_business_direction_is_not_eligible() -> None:
    snapshots = snapshot_stack(visitors=1500, cutoffs=4, seed=3)
    # Claim, wrongly, that more sessions never raise the score: the fitted logistic
    # coefficient is positive, so the model may be reported but never chosen.
    settings = BASE.model_copy(
        update={"candidates": ("lightgbm", "logistic"), "monotone_constraints": {"n_sessions": -1}}
    )
    outcome = fit_and_evaluate(snapshots, FEATURES, settings, horizon=WEEK)
    logistic = next(c for c in outcome.candidates if c.name == "logistic")
    assert not logistic.eligible and "n_sessions" in logistic.info["ineligible"]
    assert outcome.chosen.name == "lightgbm"
    assert "logistic" in outcome.table


def test_row_order_of_the_snapshots_changes_nothing() -> None:
    """A streaming collect returns rows in any order: the model and the data hash must not
    depend on it (LightGBM's binning and bagging do)."""
    snapshots = snapshot_stack(visitors=600, cutoffs=4, seed=4)
    shuffled = snapshots.sample(fraction=1.0, shuffle=True, seed=5)
    settings = BASE.model_copy(update={"n_estimators": 30})
    first = fit_and_evaluate(snapshots, FEATURES, settings, horizon=WEEK)
    second = fit_and_evaluate(shuffled, FEATURES, settings, horizon=WEEK)
    assert first.lineage["data_hash"] == second.lineage["data_hash"]
    np.testing.assert_array_equal(first.split.test.visitor_id, second.split.test.visitor_id)
    np.testing.assert_allclose(first.chosen.probability("test"), second.chosen.probability("test"))
