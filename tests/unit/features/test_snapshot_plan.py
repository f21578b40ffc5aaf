"""A short lake: the error proposes settings that fit, and they do fit (issue 23)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from features.snapshot_plan import Windows, snapshot_span, too_short_message
from propensity.settings import SnapshotSettings
from training.data import split_cutoffs

FIRST = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
DEFAULTS = SnapshotSettings()


def _windows(plan: SnapshotSettings) -> Windows:
    return Windows(lookback=plan.lookback, slide=plan.slide, horizon=plan.horizon)


def _pasted(message: str) -> SnapshotSettings:
    """The settings of the suggested command, read as the CLI's settings would read them."""
    command = message.splitlines()[-1].strip()
    assert command.endswith("propensity train"), message
    pairs = re.findall(r"PROPENSITY_SNAPSHOTS__(\w+)=(\S+)", command)
    return SnapshotSettings.model_validate({name.lower(): value for name, value in pairs})


def _snapshot_times(start: datetime, end: datetime, slide: timedelta) -> list[datetime]:
    times = [start]
    while times[-1] + slide <= end:
        times.append(times[-1] + slide)
    return times


@pytest.mark.parametrize(
    "tried",
    [
        DEFAULTS,  # 30-day lookback, 14-day slide and horizon
        SnapshotSettings(lookback=timedelta(days=21), slide=timedelta(days=7)),  # overlaps
        SnapshotSettings(
            lookback=timedelta(days=21), horizon=timedelta(days=7), slide=timedelta(days=3)
        ),
    ],
    ids=["defaults", "P21D-lookback-P7D-slide", "P7D-horizon-P3D-slide"],
)
@pytest.mark.parametrize("days", [60, 45, 20])
def test_a_short_lake_gets_settings_that_fit(tried: SnapshotSettings, days: int) -> None:
    last = FIRST + timedelta(days=days)
    assert snapshot_span(FIRST, last, _windows(tried), tried.max_snapshots) is None
    message = too_short_message(FIRST, last, _windows(tried))
    suggested = _pasted(message)
    span = snapshot_span(FIRST, last, _windows(suggested), suggested.max_snapshots)
    assert span is not None, message
    times = _snapshot_times(*span, suggested.slide)
    assert len(times) >= 3
    # The split training runs accepts them: no label window reaches the next part.
    split_cutoffs(times, 1, 1, suggested.horizon)
    assert times[0] - suggested.lookback >= FIRST and times[-1] + suggested.horizon <= last
    assert suggested.horizon <= tried.horizon and suggested.lookback <= tried.lookback


def test_the_horizon_is_kept_when_a_shorter_lookback_is_enough() -> None:
    message = too_short_message(FIRST, FIRST + timedelta(days=60), _windows(DEFAULTS))
    assert "PROPENSITY_SNAPSHOTS__HORIZON=P14D" in message
    assert "(60 days)" in message


def test_a_lake_of_a_few_days_is_told_so() -> None:
    message = too_short_message(FIRST, FIRST + timedelta(days=3), _windows(DEFAULTS))
    assert "no settings fit 3 days" in message


def test_a_lake_long_enough_keeps_the_settings() -> None:
    span = snapshot_span(FIRST, FIRST + timedelta(days=120), _windows(DEFAULTS), 8)
    assert span is not None and span[0].hour == 0  # snapshots on whole days
