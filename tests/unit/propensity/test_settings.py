"""The settings object read from the environment, as an operator sets it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from propensity.settings import Settings


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
