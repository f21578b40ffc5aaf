"""`propensity measure` from the command line: an experiment table, and a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from propensity.cli import app
from serving.campaign.statistics import compare_rates

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PROPENSITY_DATA_DIR": str(tmp_path / "data"), "PROPENSITY_LOG_LEVEL": "WARNING"}


def test_measure_an_experiment_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arm = rng.choice(["mail", "sms", "none"], 3_000)
    bought = rng.random(3_000) < np.where(arm == "none", 0.05, 0.09)
    table = tmp_path / "experiment.csv"
    pl.DataFrame({"arm": arm, "bought": bought.astype(int), "region": "north"}).write_csv(table)
    result = runner.invoke(
        app,
        ["measure", "--table", str(table), "--treatment", "arm", "--control", "none",
         "--outcome", "bought", "--by", "region", "--json"],
        env=_env(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    segments = json.loads(result.stdout)["segments"]
    assert [(s["by"], s["segment"]) for s in segments] == [("all", "all"), ("region", "north")]
    treated, control = arm != "none", arm == "none"
    expected = compare_rates(
        "bought", int(bought[treated].sum()), int(treated.sum()),
        int(bought[control].sum()), int(control.sum()),
    )  # fmt: skip
    rate = segments[0]["rates"][0]
    assert rate["difference"] == expected.difference
    assert rate["difference_low"] == expected.difference_low and rate["significant"]


def test_measure_without_a_scoring_run_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["measure"], env=_env(tmp_path))
    assert result.exit_code == 1
    assert "no scoring run published" in result.output
