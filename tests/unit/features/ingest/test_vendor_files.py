"""A missing vendor file is named with its public source and the shared copy (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path, PurePath

import pytest
from typer.testing import CliRunner

from features.ingest.vendor_files import vendor_file, where_to_get
from propensity.cli import app


@pytest.mark.parametrize(
    ("name", "fmt", "source"),
    [
        ("UserBehavior.csv.gz", "taobao", "tianchi.aliyun.com"),
        ("UserBehavior.csv", None, "tianchi.aliyun.com"),
        ("online_retail.csv", None, "archive.ics.uci.edu"),
        ("2019-Oct.csv", "rees46", "kaggle.com"),
        ("events.csv", "retailrocket", "retailrocket"),
        ("CDNOW_master.txt.gz", None, "brucehardie.com"),
    ],
)
def test_vendor_files_are_recognised(name: str, fmt: str | None, source: str) -> None:
    known = vendor_file(name, fmt)
    assert known is not None and source in known.source


def test_a_simulated_events_csv_is_not_a_vendor_file() -> None:
    assert vendor_file("sim/events.csv") is None
    assert where_to_get("mine.csv", None, None) is None


def test_the_hint_names_the_shared_copy() -> None:
    hint = where_to_get("data/UserBehavior.csv.gz", "taobao", PurePath("/d"))
    assert hint is not None and "PROPENSITY_SHARED_DATA" in hint
    assert "/d/taobao_userbehavior/UserBehavior_head_814users.csv.gz" in hint


@pytest.mark.parametrize("as_json", [True, False])
def test_ingest_of_a_missing_vendor_file_says_where_it_comes_from(
    tmp_path: Path, as_json: bool
) -> None:
    args = ["ingest", str(tmp_path / "UserBehavior.csv.gz"), "--format", "taobao"]
    env = {
        "PROPENSITY_DATA_DIR": str(tmp_path / "data"),
        "PROPENSITY_LOG_LEVEL": "WARNING",
        "PROPENSITY_SHARED_DATA": "/shared-copy",  # whatever the caller's environment holds
    }
    result = CliRunner().invoke(app, args + ["--json"] * as_json, env=env)
    assert result.exit_code == 1
    # Under --json the hint field; else stderr, where rich may wrap a long line.
    hint = json.loads(result.stdout)["hint"] if as_json else " ".join(result.stderr.split())
    assert "https://tianchi.aliyun.com/dataset/649" in hint
    assert "/shared-copy/taobao_userbehavior/" in hint
