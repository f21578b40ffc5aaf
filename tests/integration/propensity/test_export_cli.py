"""``propensity export`` end to end on a published run folder and a real contacts store."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from features.ingest.contacts import ingest_contacts_file
from propensity import jobs
from propensity.cli import app
from propensity.settings import Settings


def _publish_run(settings: Settings) -> None:
    scoring_dir = jobs.serving_paths(settings).scoring_dir
    run_dir = scoring_dir / "run-1"
    run_dir.mkdir(parents=True)
    pl.DataFrame(
        {
            "visitor_id": ["v1", "v2", "v3"],
            "score": [0.9, 0.5, 0.1],
            "decile": [1, 5, 10],
            "expected_value": [1.0, 0.5, 0.1],
            "route": ["ad_retargeting", "ad_retargeting", "email_remarketing"],
        }
    ).write_parquet(run_dir / "scores.parquet")
    (scoring_dir / "latest.json").write_text(json.dumps({"run_dir": str(run_dir)}))


def test_export_writes_hashed_customer_match_and_counts_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROPENSITY_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    _publish_run(settings)
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "visitor_id,email_status,ads_consent,updated_at,email\n"
        "v1,subscribed,granted,2025-01-01T00:00:00Z,one@example.com\n"
        "v2,subscribed,denied,2025-01-01T00:00:00Z,two@example.com\n"  # withdrew ads consent
    )
    ingest_contacts_file(
        contacts, lake_dir=settings.lake_dir, quarantine_dir=tmp_path / "q", ingest_id="c"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["export", "--to", "customer-match", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["exported"] == 1
    assert summary["left_out"]["ads_consent_not_granted_now"] == 1
    written = (out / "customer_match.csv").read_text()
    assert "example.com" not in written and written.startswith("Email,Phone")
