"""The plain scoring spec reproduces the fitted models; contributions add up."""

from __future__ import annotations

import numpy as np
import pytest

from contract.scoring import Scorer, largest_contributions
from tests.model.synthetic_snapshots import FEATURES, snapshot_stack
from training.baselines import fit_logistic, logistic_spec, recency_frequency_score
from training.boosting import fit_booster, monotone_vector
from training.data import feature_matrix
from training.settings import TrainingSettings

SETTINGS = TrainingSettings(n_estimators=30, num_threads=1)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    snapshots = snapshot_stack(visitors=600, cutoffs=2)
    return feature_matrix(snapshots, FEATURES), snapshots["label"].to_numpy()


def test_logistic_spec_matches_the_scikit_learn_pipeline(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    features, label = data
    pipeline = fit_logistic(features, label, seed=0)
    spec = {
        **logistic_spec(pipeline, FEATURES),
        "calibrator": {"method": "sigmoid", "slope": 1.0, "intercept": 0.0},
    }
    scorer = Scorer.from_parts(spec)
    np.testing.assert_allclose(
        scorer.raw_score(features), pipeline.decision_function(features), rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(
        scorer.probability(features), pipeline.predict_proba(features)[:, 1], rtol=1e-10
    )


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_contributions_add_up_to_the_raw_score(
    data: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    features, label = data
    identity = {"method": "sigmoid", "slope": 1.0, "intercept": 0.0}
    if kind == "lightgbm":
        booster = fit_booster((features, label), (features, label), FEATURES, SETTINGS)
        spec = {
            "format_version": 1,
            "kind": kind,
            "feature_columns": list(FEATURES),
            "calibrator": identity,
        }
        scorer = Scorer.from_parts(spec, booster.model_to_string())
    else:
        spec = {**logistic_spec(fit_logistic(features, label, 0), FEATURES), "calibrator": identity}
        scorer = Scorer.from_parts(spec)
    parts = scorer.contributions(features)
    assert parts.shape == (len(features), len(FEATURES) + 1)
    np.testing.assert_allclose(parts.sum(axis=1), scorer.raw_score(features), atol=1e-9)
    order, values = largest_contributions(scorer.contributions(features[:2]), k=2)
    assert order.shape == values.shape == (2, 2)
    largest = np.sort(np.abs(parts[:2, :-1]), axis=1)[:, ::-1][:, :2]
    np.testing.assert_array_equal(np.abs(values), largest)


def test_rule_ranks_frequent_recent_visitors_first() -> None:
    score = recency_frequency_score(
        np.array([1.0, 1.0, 20.0, np.nan]), np.array([5.0, 1.0, 5.0, 5.0])
    )
    assert score[0] > score[1] and score[0] > score[2] > score[3]


def test_monotone_constraints_by_name() -> None:
    assert monotone_vector(["a", "b", "c"], {"c": 1, "a": -1}) == [-1, 0, 1]
    with pytest.raises(ValueError, match="unknown features"):
        monotone_vector(["a"], {"b": 1})


def test_spec_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        Scorer.from_parts({"format_version": 99, "kind": "logistic"})
