"""One simulated lake and one registered tiny model per test process, shared by the serving
integration tests (building them takes seconds: MLflow's SQLite store creates its schema)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from features.definitions import FeatureConfig
from serving.settings import ServingPaths, ServingSettings

_WORLDS: dict[Path, World] = {}
API_KEY = "test-key"


@dataclass(frozen=True)
class World:
    root: Path
    lake_dir: Path
    tracking_uri: str
    version: str
    events: pl.DataFrame

    def paths(self, name: str) -> ServingPaths:
        """Fresh outputs and store under ``name``, same lake and registry."""
        base = self.root / name
        return ServingPaths(
            lake_dir=self.lake_dir,
            outputs_dir=base / "outputs",
            serving_dir=base / "serving",
            tracking_uri=self.tracking_uri,
        )


def settings(**changes: object) -> ServingSettings:
    # Reads opened explicitly, as an operator may: most tests read without a key
    # (``test_read_keys.py`` holds the closed default).
    base = {"predictor": "booster", "api_keys": [API_KEY], "open_reads": True}
    return ServingSettings.model_validate({**base, **changes})


def register_tiny_model(
    tracking_uri: str,
    artifact_dir: Path,
    *,
    name: str = "propensity",
    alias: str = "champion",
    trees: int = 30,
    seed: int = 0,
    feature_config: FeatureConfig | None = None,
) -> str:
    """Log the tiny model with training's own ``log_scoring_model`` (the production layout),
    its contract naming ``feature_config`` (default: the defaults), register it as ``name``
    and point ``alias`` at it; returns the version."""
    import mlflow
    import pandas as pd

    from serving.testing import TINY_FEATURES, tiny_spec, tiny_training_data
    from training.tracking import Store, client_for, experiment_id, log_scoring_model

    store = Store(tracking_uri, artifact_dir.as_uri())
    client = client_for(store)
    spec, booster_text = tiny_spec(trees, seed, feature_config)
    example = pd.DataFrame(tiny_training_data(rows=3)[0], columns=list(TINY_FEATURES))
    with mlflow.start_run(experiment_id=experiment_id(client, store, "serving-tests")):
        mlflow.log_metric("lightgbm.test.roc_auc", 0.75)
        info = log_scoring_model(spec, booster_text, example, name)
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, alias, version)
    return version


def world(factory: pytest.TempPathFactory) -> World:
    """Build once per process (xdist workers each get their own)."""
    root = factory.getbasetemp() / "serving-world"
    if root not in _WORLDS:
        from serving.testing import simulated_lake

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        root.mkdir(parents=True, exist_ok=True)
        lake = root / "lake"
        events = simulated_lake(lake, visitors=600, days=40)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        version = register_tiny_model(uri, root / "artifacts")
        _WORLDS[root] = World(root, lake, uri, version, events)
    return _WORLDS[root]


KEY = {"X-API-Key": API_KEY}


def event(**overrides: object) -> dict[str, object]:
    """One valid posted event (an add to cart), with ``overrides``."""
    return {
        "event_time": "2024-02-09T10:00:00Z",
        "event_name": "add_to_cart",
        "item_id": "sku-1",
        "price": 19.9,
        "quantity": 1,
        **overrides,
    }
