"""Under ``--json`` every error is one JSON object with a non-zero exit (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from propensity.cli import app

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PROPENSITY_DATA_DIR": str(tmp_path / "data"), "PROPENSITY_LOG_LEVEL": "WARNING"}


def _json_commands() -> list[str]:
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    return sorted(
        name
        for name, command in group.commands.items()
        if any("--json" in getattr(param, "opts", ()) for param in command.params)
    )


def _one_error(stdout: str) -> dict[str, object]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    error = json.loads(lines[0])
    assert set(error) >= {"error", "hint"} and error["error"], error
    return error


def test_there_are_json_commands() -> None:
    assert {"ingest", "train", "score", "simulate", "retrain"} <= set(_json_commands())


@pytest.mark.parametrize("command", _json_commands())
def test_a_usage_error_is_json(command: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [command, "--json", "--no-such-option"], env=_env(tmp_path))
    assert result.exit_code != 0
    assert "no-such-option" in str(_one_error(result.stdout)["error"])


def test_a_missing_file_is_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "x.csv"), "--json"], env=_env(tmp_path))
    assert result.exit_code == 1
    assert "no such file" in str(_one_error(result.stdout)["error"])


def test_train_on_an_empty_lake_is_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--json"], env=_env(tmp_path))
    assert result.exit_code == 1, result.output
    _one_error(result.stdout)


def test_without_json_errors_stay_text(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "x.csv")], env=_env(tmp_path))
    assert result.exit_code == 1
    assert result.stdout == "" and "error:" in result.stderr
