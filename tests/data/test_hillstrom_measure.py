"""`propensity measure` on Hillstrom's randomised e-mail test, where the answer is known:
conversion 1.07% among the e-mailed (either arm) against 0.57% without e-mail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from propensity.cli import app

pytestmark = pytest.mark.shared_data


def test_measure_reproduces_hillstrom(shared_data: Path, tmp_path: Path) -> None:
    table = shared_data / "hillstrom" / "hillstrom.csv.gz"
    if not table.is_file():
        pytest.skip(f"{table} is absent: Hillstrom test skipped")
    result = CliRunner().invoke(
        app,
        ["measure", "--table", str(table), "--treatment", "segment", "--control", "No E-Mail",
         "--outcome", "visit", "--outcome", "conversion", "--revenue", "spend", "--json"],
        env={"PROPENSITY_DATA_DIR": str(tmp_path), "PROPENSITY_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (overall,) = json.loads(result.stdout)["segments"]
    rates = {rate["outcome"]: rate for rate in overall["rates"]}
    conversion = rates["conversion"]
    assert (conversion["treated"], conversion["control"]) == (42_694, 21_306)
    assert round(conversion["treated_rate"] * 100, 2) == 1.07
    assert round(conversion["control_rate"] * 100, 2) == 0.57
    assert conversion["significant"] and conversion["difference_low"] > 0
    assert round(rates["visit"]["treated_rate"] * 100, 1) == 16.7
    assert round(rates["visit"]["control_rate"] * 100, 1) == 10.6
    (spend,) = overall["means"]
    assert spend["difference_low"] > 0
