"""The whole path on real Taobao events (814 visitors, 9 days): ingest, snapshots, train,
register, promote, through the CLI with ``--json``. Small data must not break anything; the
figures are too noisy to claim model quality, so only their sanity is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from propensity.cli import app

pytestmark = [pytest.mark.shared_data, pytest.mark.xdist_group("taobao_training")]
METRICS = {"roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10"}


def test_taobao_trains_registers_and_promotes(shared_data: Path, tmp_path: Path) -> None:
    events = shared_data / "taobao_userbehavior" / "UserBehavior_head_814users.csv.gz"
    if not events.is_file():
        pytest.skip(f"{events} is absent: Taobao test skipped")
    runner = CliRunner()
    # Nine days of history: daily snapshots, a 3-day lookback and a 1-day label. INFO logs
    # on: they must go to stderr, never into the JSON on stdout.
    env = {
        "PROPENSITY_DATA_DIR": str(tmp_path), "PROPENSITY_LOG_LEVEL": "INFO",
        "PROPENSITY_SNAPSHOTS__LOOKBACK": "P3D", "PROPENSITY_SNAPSHOTS__HORIZON": "P1D",
        "PROPENSITY_SNAPSHOTS__SLIDE": "P1D", "PROPENSITY_TRAINING__NUM_THREADS": "1",
    }  # fmt: skip
    ingested = runner.invoke(app, ["ingest", str(events), "--format", "taobao", "--json"], env=env)
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["visitors"] == 814

    trained = runner.invoke(app, ["train", "--json"], env=env)
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    assert set(result["metrics"]) >= {"lightgbm", "logistic", "rule"}
    assert "bgnbd" not in result["metrics"]  # views and carts: not a purchase-only log
    for parts in result["metrics"].values():
        assert set(parts["test"]) >= METRICS
        assert 0.5 < parts["test"]["roc_auc"] < 0.8  # some signal, no leak
        assert "new" in parts["segments"] or "returning" in parts["segments"]
    assert result["lineage"]["rows"]["test"] > 700
    assert Path(result["report"]).is_file()

    promoted = runner.invoke(app, ["promote", "--json"], env=env)
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout)["promoted"]
