"""The settings object read from the environment, as an operator sets it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from propensity.cli import app
from propensity.settings import Settings, describe_settings_error


def test_one_nested_field_keeps_its_siblings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raising one channel's holdout keeps that channel's costs and lift, and capping the
    ad audience keeps the ad spend limit (they used to be lost, or refused as missing)."""
    monkeypatch.setenv("PROPENSITY_SERVING__ROUTING__EMAIL__HOLDOUT_SHARE", "0.5")
    monkeypatch.setenv("PROPENSITY_SERVING__ROUTING__AD_BUDGET__MAX_AUDIENCE", "100")
    monkeypatch.setenv("PROPENSITY_SNAPSHOTS__LOOKBACK", "P3D")
    routing = Settings().serving.routing
    assert routing.email.holdout_share == 0.5
    assert (routing.email.cost_per_contact, routing.email.incremental_lift) == (0.002, 0.05)
    assert (routing.ad_budget.max_audience, routing.ad_budget.max_spend) == (100, 5000.0)
    assert routing.ads.holdout_share == 0.05
    snapshots = Settings().snapshots
    assert snapshots.feature_config().lookback == timedelta(days=3)
    assert snapshots.horizon == timedelta(days=14)


def test_the_ad_cost_alone_keeps_the_channels_lift(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported crash: only the ad cost set ("incremental_lift Field required")."""
    monkeypatch.setenv("PROPENSITY_SERVING__ROUTING__ADS__COST_PER_CONTACT", "0.3")
    ads = Settings().serving.routing.ads
    assert (ads.cost_per_contact, ads.incremental_lift, ads.cpm) == (0.3, 0.10, 1.53)
    assert ads.unit_cost == 0.3


def test_invalid_settings_are_one_line_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROPENSITY_SERVING__ROUTING__ADS__COST_PER_CONTACT", "abc")
    monkeypatch.setenv("PROPENSITY_SNAPSHOTS__SLIDE", "-")
    with pytest.raises(ValidationError) as invalid:
        Settings()
    line = describe_settings_error(invalid.value)
    assert "\n" not in line
    assert "PROPENSITY_SERVING__ROUTING__ADS__COST_PER_CONTACT='abc'" in line
    assert "PROPENSITY_SNAPSHOTS__SLIDE='-'" in line


def test_a_command_with_invalid_settings_fails_with_no_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROPENSITY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PROPENSITY_SERVING__ROUTING__ADS__CPM", "-1")
    result = CliRunner().invoke(app, ["measure"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "PROPENSITY_SERVING__ROUTING__ADS__CPM='-1'" in result.output
    assert "greater than or equal to 0" in result.output
