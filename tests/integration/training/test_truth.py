"""``propensity simulate`` then ``ingest`` and ``train --truth``: the report carries the
true, as-of and ideal-observer AUCs and the chosen model's fraction of each (real lake and
MLflow store in tmp)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.simulation import SimulationConfig
from propensity.cli import app

runner = CliRunner()


def _json(args: list[str], env: dict[str, str]) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    payload: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return payload


def test_train_with_truth_reports_the_ideal_observer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = {
        "PROPENSITY_DATA_DIR": str(tmp_path / "data"),
        "PROPENSITY_LOG_LEVEL": "WARNING",
        "PROPENSITY_TRAINING__N_ESTIMATORS": "40",
        "PROPENSITY_TRAINING__NUM_THREADS": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    simulated = _json(
        ["simulate", "--visitors", "4000", "--days", "90", "--seed", "5", "--format", "parquet",
         "--out", str(tmp_path / "sim")],
        env,
    )  # fmt: skip
    files = simulated["files"]
    assert isinstance(files, dict)
    written = SimulationConfig.from_json(Path(files["config"]).read_text(encoding="utf-8"))
    assert written == SimulationConfig(visitors=4000, days=90, seed=5)
    _json(["ingest", files["events"]], env)
    trained = _json(["train", "--truth", files["truth"]], env)
    lineage = trained["lineage"]
    assert isinstance(lineage, dict)
    reference = lineage["reference"]
    for name in ("true", "as_of", "ideal"):
        assert 0.5 < reference[f"{name}_roc_auc"] <= 1.0
        model_auc = reference[f"fraction_of_{name}_auc"] * reference[f"{name}_roc_auc"]
        assert model_auc == pytest.approx(
            reference["fraction_of_true_auc"] * reference["true_roc_auc"]
        )
    # Knowing less than the as-of probability (rate and intent) can only cost ranking.
    assert reference["ideal_roc_auc"] < reference["as_of_roc_auc"]
