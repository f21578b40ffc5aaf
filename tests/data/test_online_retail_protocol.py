"""The UCI Online Retail out-of-time protocol from the CLI (issue 22): features over every
customer's whole history before 2011-09-01 (shop time, Europe/London), a label over the
next 90 days, the untruncated file and no anchor event.

Needs ``$PROPENSITY_SHARED_DATA/uci_online_retail/online_retail_2010_2011.csv.gz``; skipped
when it is absent. About 15 s: one ingest, four snapshots of a few thousand customers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from typer.testing import CliRunner

from features.lake import scan_events
from propensity.cli import app

pytestmark = [pytest.mark.shared_data, pytest.mark.xdist_group("online_retail_protocol")]
RETAIL = Path("uci_online_retail") / "online_retail_2010_2011.csv.gz"
MAPPING = Path(__file__).parents[2] / "examples" / "mappings" / "uci_online_retail.toml"
TEST_CUT = datetime(2011, 9, 1, tzinfo=ZoneInfo("Europe/London"))


def test_online_retail_protocol_keeps_every_customer_seen_before_the_cut(
    shared_data: Path, tmp_path: Path
) -> None:
    raw = shared_data / RETAIL
    if not raw.is_file():
        pytest.skip(f"{raw} is absent: Online Retail protocol test skipped")
    runner = CliRunner()
    env = {
        "PROPENSITY_DATA_DIR": str(tmp_path), "PROPENSITY_LOG_LEVEL": "WARNING",
        "PROPENSITY_SNAPSHOTS__LOOKBACK": "all", "PROPENSITY_SNAPSHOTS__HORIZON": "P90D",
        "PROPENSITY_SNAPSHOTS__SLIDE": "P90D", "PROPENSITY_SNAPSHOTS__TIMEZONE": "Europe/London",
        "PROPENSITY_TRAINING__NUM_THREADS": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }  # fmt: skip
    ingested = runner.invoke(
        app, ["ingest", str(raw), "--mapping", str(MAPPING), "--json"], env=env
    )
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["first_event"] == "2010-12-01T08:26:00+00:00"  # whole

    trained = runner.invoke(app, ["train", "--test-as-of", "2011-09-01", "--json"], env=env)
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    lineage = result["lineage"]
    assert lineage["snapshot_config"]["cuts"][-1] == "2011-09-01T00:00:00+01:00"
    assert lineage["snapshot_config"]["lookback"] == "all"
    assert [c[:19] for c in lineage["cutoffs"]["test"]] == ["2011-08-31 23:00:00"]

    # Full history: the test population is every customer with an order before the cut (a
    # 30-day lookback kept about 60% of them, and shifted the positive rate to ~67%).
    events = scan_events(tmp_path / "lake")
    before = events.filter(pl.col("event_time") < TEST_CUT.astimezone(UTC))
    customers = before.select(pl.col("visitor_id").n_unique()).collect().item()
    assert lineage["rows"]["test"] == customers > 3000
    assert 0.50 < lineage["positives"]["test"] / lineage["rows"]["test"] < 0.62

    chosen = result["metrics"][result["chosen"]]["test"]
    assert 0.70 < chosen["roc_auc"] < 0.80  # published baselines: ~0.74
    for name in ("rule", "bgnbd"):
        assert 0.65 < result["metrics"][name]["test"]["roc_auc"] < 0.80
