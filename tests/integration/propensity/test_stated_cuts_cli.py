"""``propensity train --test-as-of D --validation-as-of D2`` trains on those cuts (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from propensity.cli import app
from training.tracking import resolve_store

runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated shop's data directory: 100 days of 1,500 visitors from 2024-01-01."""
    root = tmp_path_factory.mktemp("stated_cuts")
    env = {"PROPENSITY_DATA_DIR": str(root / "data"), "PROPENSITY_LOG_LEVEL": "WARNING"}
    sim = root / "sim"
    made = runner.invoke(
        app, ["simulate", "--visitors", "1500", "--days", "100", "--out", str(sim)], env=env
    )
    assert made.exit_code == 0, made.output
    ingested = runner.invoke(app, ["ingest", str(sim / "events.csv"), "--json"], env=env)
    assert ingested.exit_code == 0, ingested.output
    return root / "data"


def _env(data: Path) -> dict[str, str]:
    return {
        "PROPENSITY_DATA_DIR": str(data),
        "PROPENSITY_LOG_LEVEL": "WARNING",
        "PROPENSITY_SNAPSHOTS__TIMEZONE": "Europe/Paris",
        "PROPENSITY_TRAINING__N_ESTIMATORS": "20",
        "PROPENSITY_TRAINING__NUM_THREADS": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def test_train_uses_the_stated_cuts_at_the_shops_midnight(shop: Path) -> None:
    trained = runner.invoke(
        app,
        ["train", "--test-as-of", "2024-03-25", "--validation-as-of", "2024-03-11", "--json"],
        env=_env(shop),
    )
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    plan = result["lineage"]["snapshot_config"]
    # Paris is UTC+1 in March before the 31st: the dates are Paris midnights.
    assert plan["cuts"][-2:] == ["2024-03-11T00:00:00+01:00", "2024-03-25T00:00:00+01:00"]
    assert plan["timezone"] == "Europe/Paris"
    assert [c[:19] for c in result["lineage"]["cutoffs"]["test"]] == ["2024-03-24 23:00:00"]
    assert [c[:19] for c in result["lineage"]["cutoffs"]["validation"]] == ["2024-03-10 23:00:00"]
    assert len(result["lineage"]["cutoffs"]["train"]) == len(plan["cuts"]) - 2 >= 1
    params = (
        MlflowClient(resolve_store(shop, {}).tracking_uri).get_run(result["run_id"]).data.params
    )
    stated = "2024-03-11T00:00:00+01:00,2024-03-25T00:00:00+01:00"
    assert params["snapshots.cuts"].endswith(stated)
    assert params["snapshots.timezone"] == "Europe/Paris"


def test_a_leaking_training_cut_is_one_json_error_naming_it(shop: Path) -> None:
    refused = runner.invoke(
        app,
        [
            "train", "--test-as-of", "2024-03-25", "--validation-as-of", "2024-03-11",
            "--train-as-of", "2024-03-01", "--json",
        ],
        env=_env(shop),
    )  # fmt: skip
    assert refused.exit_code == 1, refused.output
    error = json.loads(refused.stdout)
    assert error["error"].startswith("training cut 2024-03-01T00:00:00+01:00: its 14-day label")
    assert "validation cut 2024-03-11T00:00:00+01:00" in error["error"]
    assert error["hint"]
