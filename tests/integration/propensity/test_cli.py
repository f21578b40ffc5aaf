"""The CLI as a batch job scripts it: --json on stdout, clear errors, --help everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from propensity.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PROPENSITY_DATA_DIR": str(tmp_path / "data"), "PROPENSITY_LOG_LEVEL": "WARNING"}


def test_ingest_json_summary(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["ingest", str(FIXTURES / "broken_events.csv"), "--format", "canonical", "--json"],
        env=_env(tmp_path),
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == 18
    assert summary["accepted"] + summary["duplicates"] + sum(summary["quarantined"].values()) == 18
    assert set(summary) >= {
        "rows_read",
        "accepted",
        "duplicates",
        "quarantined",
        "visitors",
        "first_event",
        "last_event",
        "quarantine_file",
    }
    assert Path(summary["quarantine_file"]).is_file()
    assert (tmp_path / "data" / "lake" / "events").is_dir()


def test_ingest_table_for_people(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(FIXTURES / "broken_events.csv")], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "unparseable_line" in result.stdout
    assert "quarantine file" in result.stdout


def test_wrong_columns_give_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["ingest", str(FIXTURES / "broken_events.csv"), "--format", "taobao"],
        env=_env(tmp_path),
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "missing ['category_id', 'behavior_type', 'timestamp']" in result.output


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", str(FIXTURES / "broken_events.csv"), "--format", "nope"], env=_env(tmp_path)
    )
    assert result.exit_code == 1
    assert "unknown format 'nope'" in result.output


def _command_paths() -> list[list[str]]:
    group = get_command(app)
    return [[], *([name] for name in group.commands)]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "propensity")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_features_in_visitor_shards_equal_the_single_plan(tmp_path: Path) -> None:
    import polars as pl

    from features.batch import build_features, collect
    from features.ingest.lake_writer import write_partitions
    from features.testing import AS_OF, random_events, to_frame

    env = _env(tmp_path)
    events = to_frame(random_events(600, seed=5, visitors=40))
    write_partitions(events, tmp_path / "data" / "lake", "test")
    out = tmp_path / "features"
    # 600 events at 100 per shard: the window's events are split into several shards.
    result = runner.invoke(
        app,
        ["features", "--as-of", AS_OF.isoformat(), "--out", str(out), "--json"],
        env={**env, "PROPENSITY_FEATURES__EVENTS_PER_SHARD": "100"},
    )
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("part-*.parquet"))) > 1
    assert not list((tmp_path / "data" / "tmp").glob("*")), "split files left behind"
    sharded = pl.read_parquet(out / "*.parquet").sort("visitor_id")
    whole = collect(build_features(events, AS_OF)).sort("visitor_id")
    assert sharded.equals(whole)
    assert json.loads(result.stdout)["visitors"] == whole.height


def test_simulated_parquet_is_ingested_as_canonical_events(tmp_path: Path) -> None:
    env = _env(tmp_path)
    simulated = runner.invoke(
        app,
        ["simulate", "--visitors", "200", "--days", "10", "--format", "parquet", "--json"],
        env=env,
    )
    assert simulated.exit_code == 0, simulated.output
    files = json.loads(simulated.stdout)["files"]
    events = json.loads(simulated.stdout)["events"]
    ingested = runner.invoke(app, ["ingest", files["events"], "--json"], env=env)
    assert ingested.exit_code == 0, ingested.output
    summary = json.loads(ingested.stdout)
    assert summary["rows_read"] == events and summary["accepted"] == events


def test_ingest_folder_reports_per_file_and_total_and_skips_what_it_has(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    broken = (FIXTURES / "broken_events.csv").read_bytes()
    (inbox / "events_1.csv").write_bytes(broken)
    (inbox / "events_2.csv").write_bytes(broken.replace(b"v1,", b"w1,"))
    first = runner.invoke(app, ["ingest", str(inbox), "--json"], env=_env(tmp_path))
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert [f["status"] for f in summary["files"]] == ["ingested", "ingested"]
    assert summary["total"]["rows_read"] == 36
    again = runner.invoke(app, ["ingest", str(inbox / "*.csv"), "--json"], env=_env(tmp_path))
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["total"] | {"quarantined": {}} == {
        "files": 2, "ingested": 0, "skipped": 2, "failed": 0,
        "rows_read": 0, "accepted": 0, "duplicates": 0, "quarantined": {},
    }  # fmt: skip
    table = runner.invoke(app, ["ingest", str(inbox)], env=_env(tmp_path))
    assert "2 skipped" in table.stdout
