"""A 60-day simulated lake: train proposes settings, and the pasted line makes the plan fit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from propensity import jobs
from propensity.cli import app
from propensity.settings import Settings

runner = CliRunner()


def test_the_proposed_line_applied_makes_the_plan_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROPENSITY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PROPENSITY_LOG_LEVEL", "WARNING")
    sim = tmp_path / "sim"
    made = runner.invoke(app, ["simulate", "--visitors", "300", "--days", "60", "--out", str(sim)])
    assert made.exit_code == 0, made.output
    assert runner.invoke(app, ["ingest", str(sim / "events.csv"), "--json"]).exit_code == 0

    refused = runner.invoke(app, ["train", "--json"])
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)
    assert "too short" in error["error"]
    line = error["hint"]
    assert line.endswith(" propensity train") and line in error["error"]

    for name, value in re.findall(r"(PROPENSITY_SNAPSHOTS__\w+)=(\S+)", line):
        monkeypatch.setenv(name, value)
    plan = jobs.snapshot_config_for_lake(Settings())  # raised LakeTooShort before
    assert plan.start + 2 * plan.slide <= plan.end
