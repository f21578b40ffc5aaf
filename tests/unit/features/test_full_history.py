"""Full-history features (issue 22): ``lookback = all`` reads every event before the cut,
windowed features stay windowed, and a plan needs no lookback of history before its cuts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contract.model import ModelContract, feature_params
from features.batch import build_features, collect
from features.definitions import FeatureConfig
from features.snapshot_plan import (
    CutRefused,
    StatedCuts,
    Windows,
    fitting_windows,
    snapshot_span,
    stated_cuts,
)
from features.snapshots import SnapshotConfig, build_snapshots
from features.testing import AS_OF, to_frame
from propensity.settings import SnapshotSettings

DAY = timedelta(days=1)
FULL = FeatureConfig(lookback=None)
FIRST = datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
LAST = datetime(2011, 12, 9, 12, 50, tzinfo=UTC)
QUARTER_ALL = Windows(lookback=None, slide=90 * DAY, horizon=90 * DAY)


def _purchase(at: datetime, order: str) -> dict[str, Any]:
    return {
        "visitor_id": "v", "event_time": at, "event_name": "purchase", "item_id": "a",
        "item_category": None, "price": 10.0, "quantity": 1, "revenue": 10.0,
        "transaction_id": order, "session_id": None, "user_id": None, "source": None,
    }  # fmt: skip


def test_full_history_counts_every_order_and_windowed_features_stay_windowed() -> None:
    rows = [_purchase(AS_OF - 400 * DAY, "t1"), _purchase(AS_OF - 2 * DAY, "t2")]
    full = collect(build_features(to_frame(rows), AS_OF, config=FULL)).row(0, named=True)
    month = collect(build_features(to_frame(rows), AS_OF)).row(0, named=True)
    assert (full["n_orders"], month["n_orders"]) == (2, 1)
    assert full["days_since_first_event"] == pytest.approx(400)
    assert full["n_purchase_1_7d"] == month["n_purchase_1_7d"] == 1
    assert full["n_purchase_14_30d"] == month["n_purchase_14_30d"] == 0


def test_a_visitor_seen_only_long_ago_is_in_the_full_history_population() -> None:
    rows = [_purchase(AS_OF - 300 * DAY, "t1")]
    assert collect(build_features(to_frame(rows), AS_OF, config=FULL)).height == 1
    assert collect(build_features(to_frame(rows), AS_OF)).height == 0


@pytest.mark.parametrize("spelled", ["all", "ALL", " all "])
def test_settings_spell_full_history_as_all(spelled: str) -> None:
    settings = SnapshotSettings(lookback=spelled)  # type: ignore[arg-type]
    assert settings.lookback is None
    assert settings.feature_config() == FULL


def test_full_history_travels_with_the_model_and_reads_back() -> None:
    contract = ModelContract(feature_columns=("n_events",), feature_config=FULL)
    spec = {"feature_columns": ["n_events"], **contract.spec_fields()}
    assert spec["feature_config"]["lookback"] == "all"
    assert ModelContract.from_spec(spec).serving_config() == FULL
    assert feature_params(FULL, None)["features.lookback"] == "all"


def test_a_full_history_plan_needs_no_lookback_before_the_first_cut() -> None:
    # A 365-day lookback would not fit before 2011-09-01 - 2 x 90 days.
    stated = StatedCuts(test=datetime(2011, 9, 1, tzinfo=UTC))
    cuts = stated_cuts(FIRST, LAST, QUARTER_ALL, stated, max_snapshots=8)
    assert cuts[-1] == datetime(2011, 9, 1, tzinfo=UTC) and len(cuts) == 4
    assert cuts[0] > FIRST  # every cut has some history before it
    with pytest.raises(CutRefused, match="365-day lookback"):
        stated_cuts(FIRST, LAST, Windows(365 * DAY, 90 * DAY, 90 * DAY), stated, 8)


def test_a_full_history_cut_with_no_event_before_it_is_refused() -> None:
    stated = StatedCuts(datetime(2011, 9, 1, tzinfo=UTC), train=(FIRST,))
    with pytest.raises(CutRefused, match="no event before it"):
        stated_cuts(FIRST, LAST, QUARTER_ALL, stated, max_snapshots=8)


def test_the_start_slide_rule_starts_after_the_first_event_with_full_history() -> None:
    span = snapshot_span(FIRST, LAST, Windows(None, 90 * DAY, 90 * DAY), max_snapshots=8)
    assert span is not None and span[0] == datetime(2010, 12, 2, tzinfo=UTC)
    fits = fitting_windows(FIRST, FIRST + 40 * DAY, Windows(None, 30 * DAY, 30 * DAY))
    assert fits is not None and fits.lookback is None
    assert "LOOKBACK=all" in fits.as_command()


def test_full_history_snapshots_read_events_before_the_first_cut() -> None:
    rows = [_purchase(AS_OF - 200 * DAY, "t1"), _purchase(AS_OF + DAY, "t2")]
    config = SnapshotConfig(start=AS_OF, end=AS_OF, lookback="all", horizon=7 * DAY)  # type: ignore[arg-type]
    assert config.events_needed()[0] is None
    snapshots = collect(build_snapshots(to_frame(rows), config))
    assert snapshots.select("n_orders", "label").rows() == [(1, 1)]
