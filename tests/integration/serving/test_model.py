"""Serving's fast scorer gives the registered pyfunc model's probabilities (assert_allclose),
with the Booster and with the compiled (lleaves) predictor."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from serving.model.registry import ModelUnavailable, load_registered_model
from serving.testing import TINY_FEATURES, tiny_training_data
from tests.integration.serving.world import World, world


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    return world(tmp_path_factory)


def _features() -> np.ndarray:
    features, _ = tiny_training_data(rows=500, seed=11)
    features[::7, 4] = np.nan  # missing values where the model never saw them
    return features


@pytest.mark.parametrize("predictor", ["booster", "lleaves"])
def test_fast_path_equals_the_pyfunc(shared: World, predictor: str) -> None:
    if predictor == "lleaves" and importlib.util.find_spec("lleaves") is None:
        pytest.skip("lleaves is not installed")
    import mlflow.pyfunc

    paths = shared.paths(f"model-{predictor}")
    loaded = load_registered_model(
        "models:/propensity@champion",
        tracking_uri=shared.tracking_uri,
        cache_dir=paths.model_cache_dir,
        predictor=predictor,  # type: ignore[arg-type]
    )
    assert loaded.info.predictor == predictor
    assert loaded.info.version == shared.version and loaded.info.metrics
    mlflow.set_tracking_uri(shared.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/propensity@champion")
    features = _features()
    expected = np.asarray(pyfunc.predict(pd.DataFrame(features, columns=list(TINY_FEATURES))))
    assert_allclose(loaded.model.predict_proba(features), expected, rtol=1e-12, atol=1e-15)
    contributions = loaded.model.contributions(features)
    raw = loaded.model.raw_score(features)
    assert_allclose(contributions.sum(axis=1), raw, rtol=1e-9, atol=1e-12)


def test_unknown_model_is_a_clear_error(shared: World) -> None:
    with pytest.raises(ModelUnavailable, match="train and promote"):
        load_registered_model(
            "models:/propensity@nobody",
            tracking_uri=shared.tracking_uri,
            cache_dir=shared.root / "none",
            predictor="booster",
        )
    with pytest.raises(ModelUnavailable, match="expected models:/"):
        load_registered_model(
            "runs:/abc/model",
            tracking_uri=shared.tracking_uri,
            cache_dir=shared.root / "none",
            predictor="booster",
        )
