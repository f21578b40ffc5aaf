"""Ingest of the real public files in PROPENSITY_SHARED_DATA: no row unaccounted for."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.ingest.mapping import builtin_mapping, load_mapping
from features.ingest.pipeline import IngestReport, ingest_file
from features.ingest.validate import ValidationLimits

EXAMPLES = Path(__file__).parents[2] / "examples" / "mappings"
pytestmark = pytest.mark.shared_data


def _ingest(
    path: Path, mapping_name: str, tmp_path: Path, limits: ValidationLimits
) -> IngestReport:
    mapping = (
        load_mapping(EXAMPLES / f"{mapping_name}.toml")
        if mapping_name.startswith("uci")
        else builtin_mapping(mapping_name)
    )
    report = ingest_file(
        path,
        mapping=mapping,
        lake_dir=tmp_path / "lake",
        quarantine_dir=tmp_path / "quarantine",
        limits=limits,
        batch_rows=50_000,
        ingest_id="real",
    )
    report.check_balance()
    return report


def test_taobao(shared_data: Path, tmp_path: Path, limits: ValidationLimits) -> None:
    path = shared_data / "taobao_userbehavior" / "UserBehavior_head_814users.csv.gz"
    report = _ingest(path, "taobao", tmp_path, limits)
    assert (report.rows_read, report.accepted, report.quarantined_total) == (84_252, 84_252, 0)
    assert report.visitors == 814
    # The README's window is in China time (UTC+8): 2017-11-25..12-03.
    assert str(report.first_event) == "2017-11-24 16:00:17+00:00"
    assert str(report.last_event) == "2017-12-03 15:59:23+00:00"


def test_rees46_truncated_last_line_is_quarantined(
    shared_data: Path, tmp_path: Path, limits: ValidationLimits
) -> None:
    report = _ingest(shared_data / "rees46" / "2019-Oct_head.csv.gz", "rees46", tmp_path, limits)
    assert report.rows_read == 17_435
    assert report.quarantined == {"unparseable_line": 1}
    assert report.duplicates == 5
    assert report.accepted == 17_429


def test_uci_online_retail_through_the_example_mapping(
    shared_data: Path, tmp_path: Path, limits: ValidationLimits
) -> None:
    path = shared_data / "uci_online_retail" / "online_retail_2010_2011.csv.gz"
    report = _ingest(path, "uci_online_retail", tmp_path, limits)
    assert report.rows_read == 541_909
    # The 135,080 lines without a CustomerID cannot be attributed to a visitor.
    assert report.quarantined == {"missing_visitor": 135_080}
    assert report.visitors == 4_372
    assert report.accepted + report.duplicates == 541_909 - 135_080
