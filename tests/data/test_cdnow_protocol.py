"""CDNOW's standard split from the CLI (issue 22): the untruncated master file, a test cut at
the end of the 39-week calibration period (1997-10-01, midnight), full-history features and
a 13-week label ``[T, T + 91 days)``, so the orders dated on the cut day are labels (no noon
cut needed).

Needs ``$PROPENSITY_SHARED_DATA/cdnow/CDNOW_master.txt.gz``; skipped when it is absent.
About 40 s: 23,570 customers in three snapshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from features.lake import scan_events
from propensity.cli import app

pytestmark = [pytest.mark.shared_data, pytest.mark.xdist_group("cdnow_protocol")]
MASTER = Path("cdnow") / "CDNOW_master.txt.gz"
TEST_CUT = datetime(1997, 10, 1, tzinfo=UTC)
HORIZON = timedelta(days=91)


def test_cdnow_standard_split_counts_orders_on_the_cut_day_as_labels(
    shared_data: Path, tmp_path: Path
) -> None:
    master = shared_data / MASTER
    if not master.is_file():
        pytest.skip(f"{master} is absent: CDNOW protocol test skipped")
    runner = CliRunner()
    env = {
        "PROPENSITY_DATA_DIR": str(tmp_path), "PROPENSITY_LOG_LEVEL": "WARNING",
        "PROPENSITY_SNAPSHOTS__LOOKBACK": "all", "PROPENSITY_SNAPSHOTS__HORIZON": "P91D",
        "PROPENSITY_SNAPSHOTS__SLIDE": "P91D", "PROPENSITY_TRAINING__NUM_THREADS": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }  # fmt: skip
    ingested = runner.invoke(app, ["ingest", str(master), "--format", "cdnow", "--json"], env=env)
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["last_event"] == "1998-06-30T00:00:00+00:00"  # whole

    trained = runner.invoke(app, ["train", "--test-as-of", "1997-10-01", "--json"], env=env)
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    lineage = result["lineage"]
    assert lineage["snapshot_config"]["cuts"][-1] == "1997-10-01T00:00:00Z"

    # The whole cohort (first purchases in Q1 1997) is in the test population, and its
    # positives are the customers buying in [T, T + 91 days): the cut day included.
    purchases = scan_events(tmp_path / "lake").filter(pl.col("event_name") == "purchase")
    at = pl.col("event_time")

    def customers(when: pl.Expr) -> int:
        return purchases.filter(when).select(pl.col("visitor_id").n_unique()).collect().item()

    assert lineage["rows"]["test"] == customers(at < TEST_CUT) == 23_570
    labelled = customers((at >= TEST_CUT) & (at < TEST_CUT + HORIZON))
    assert lineage["positives"]["test"] == labelled
    assert labelled > customers((at > TEST_CUT) & (at <= TEST_CUT + HORIZON))  # (T, T+h]

    chosen = result["metrics"][result["chosen"]]["test"]
    assert 0.75 < chosen["roc_auc"] < 0.80 and chosen["log_loss"] < 0.40  # published ~0.78
    assert 0.74 < result["metrics"]["bgnbd"]["test"]["roc_auc"] < 0.80
