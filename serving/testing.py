"""A simulated lake and a tiny model's scoring spec for serving's tests and benchmarks.

Imported only by tests and benchmarks. ``tiny_spec`` follows the layout training logs
(``scoring.json`` with its model contract, plus ``booster.txt``; see ``contract.scoring``);
the tests and the benchmark log it with training's own ``log_scoring_model``, so serving's
loader reads exactly what production writes (serving itself never imports ``training``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from contract.model import LabelWindow, ModelContract
from features.definitions import FEATURE_COLUMNS, FeatureConfig
from features.ingest.contacts import write_contacts
from features.ingest.lake_writer import write_partitions
from features.simulation import SimulationConfig, simulate

SIM_START = datetime(2024, 1, 1, tzinfo=UTC)
#: Inputs of the tiny model: enough to cover counts, recency, NaN handling and order value.
TINY_FEATURES: tuple[str, ...] = (
    "n_events",
    "n_sessions",
    "n_add_to_cart_1_7d",
    "n_view_item_1d",
    "days_since_last_event",
    "days_since_last_purchase",
    "avg_order_value",
    "n_carts_abandoned",
)


def simulated_lake(
    lake_dir: Path, *, visitors: int = 1500, days: int = 45, seed: int = 3
) -> pl.DataFrame:
    """Write a simulated lake (events and contacts); returns the events."""
    data = simulate(SimulationConfig(visitors=visitors, days=days, seed=seed, start=SIM_START))
    write_partitions(data.events, lake_dir, ingest_id="simulated")
    write_contacts(lake_dir, data.contacts)
    return data.events


def tiny_training_data(rows: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random features (NaN where the feature is nullable) and a label that depends on them."""
    rng = np.random.default_rng(seed)
    features = np.column_stack(
        [
            rng.poisson(8, rows),
            rng.poisson(2, rows),
            rng.poisson(0.5, rows),
            rng.poisson(1, rows),
            rng.uniform(0, 30, rows),
            np.where(rng.uniform(size=rows) < 0.8, np.nan, rng.uniform(0, 30, rows)),
            np.where(rng.uniform(size=rows) < 0.8, np.nan, rng.gamma(2, 30, rows)),
            rng.poisson(0.3, rows),
        ]
    ).astype(np.float64)
    logit = -3 + 0.9 * features[:, 2] + 0.3 * features[:, 1] - 0.05 * features[:, 4]
    label = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return features, label


def tiny_spec(
    trees: int = 30, seed: int = 0, feature_config: FeatureConfig | None = None
) -> tuple[dict[str, Any], str]:
    """(scoring spec, booster text) of a small LightGBM with a sigmoid calibrator, whose
    contract says its inputs are computed with ``feature_config`` (default: the defaults)."""
    import lightgbm

    features, label = tiny_training_data(seed=seed)
    params = {
        "objective": "binary",
        "num_leaves": 15,
        "learning_rate": 0.1,
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
    }
    booster = lightgbm.train(
        params, lightgbm.Dataset(features, label, feature_name=list(TINY_FEATURES)), trees
    )
    contract = ModelContract(
        feature_columns=TINY_FEATURES,
        feature_config=feature_config or FeatureConfig(),
        label=LabelWindow(horizon=timedelta(days=14)),
    )
    spec = {
        "kind": "lightgbm",
        "feature_columns": list(TINY_FEATURES),
        "calibrator": {"method": "sigmoid", "slope": 0.9, "intercept": -0.1},
        "booster_file": "booster.txt",
        **contract.spec_fields(),
    }
    assert set(TINY_FEATURES) <= set(FEATURE_COLUMNS)
    return spec, booster.model_to_string()
