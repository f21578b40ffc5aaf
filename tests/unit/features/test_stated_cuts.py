"""Cuts a user states (issue 22): accepted as given, leaks refused naming the cut, dates at
the shop's local midnight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from features.snapshot_plan import CutRefused, StatedCuts, Windows, snapshot_span, stated_cuts
from features.snapshots import SnapshotConfig
from propensity.settings import SnapshotSettings
from training.data import split_cutoffs

LONDON = ZoneInfo("Europe/London")
DAY = timedelta(days=1)
# Online Retail's span: 2010-12-01 08:26 to 2011-12-09 12:50 (UTC).
FIRST = datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
LAST = datetime(2011, 12, 9, 12, 50, tzinfo=UTC)
QUARTER = Windows(lookback=30 * DAY, slide=90 * DAY, horizon=90 * DAY)


def _london(*day: int) -> datetime:
    return datetime(*day, tzinfo=LONDON)


def test_stated_cuts_are_used_as_given() -> None:
    stated = StatedCuts(
        test=_london(2011, 9, 1),
        validation=_london(2011, 6, 1),
        train=(_london(2011, 3, 1), _london(2011, 1, 15)),
    )
    cuts = stated_cuts(FIRST, LAST, QUARTER, stated, max_snapshots=8)
    assert cuts == [
        _london(2011, 1, 15), _london(2011, 3, 1), _london(2011, 6, 1), _london(2011, 9, 1)
    ]  # fmt: skip
    train, validation, test = split_cutoffs(cuts, 1, 1, QUARTER.horizon)
    assert (len(train), validation, test) == (2, [cuts[2]], [cuts[3]])  # none purged


def test_a_test_cut_alone_places_the_others_back_by_the_slide_at_local_midnight() -> None:
    windows = Windows(lookback=30 * DAY, slide=14 * DAY, horizon=14 * DAY)
    cuts = stated_cuts(FIRST, LAST, windows, StatedCuts(test=_london(2011, 11, 1)), 8)
    assert len(cuts) == 8 and cuts[-1] == _london(2011, 11, 1)
    # Across the end of summer time (30 October): every cut still a London midnight...
    assert all(c.astimezone(LONDON).time() == datetime.min.time() for c in cuts)
    # ...and no label window reaches the next cut in absolute time, so nothing is purged.
    assert split_cutoffs(cuts, 1, 1, windows.horizon)[0] == cuts[:-2]


@pytest.mark.parametrize(
    ("stated", "named", "past"),
    [
        (
            StatedCuts(_london(2011, 9, 1), _london(2011, 6, 1), (_london(2011, 4, 1),)),
            "training cut 2011-04-01T00:00:00+01:00",
            "past the validation cut 2011-06-01T00:00:00+01:00",
        ),
        (
            StatedCuts(_london(2011, 9, 1), _london(2011, 7, 1)),
            "validation cut 2011-07-01T00:00:00+01:00",
            "past the test cut 2011-09-01T00:00:00+01:00",
        ),
    ],
    ids=["training-into-validation", "validation-into-test"],
)
def test_a_label_window_reaching_the_next_cut_is_refused_naming_the_cut(
    stated: StatedCuts, named: str, past: str
) -> None:
    with pytest.raises(CutRefused) as refused:
        stated_cuts(FIRST, LAST, QUARTER, stated, max_snapshots=8)
    message = str(refused.value)
    assert message.startswith(named) and past in message and "90-day label window" in message
    assert refused.value.hint is not None and "minus the horizon" in refused.value.hint


def test_a_window_ending_exactly_at_the_next_cut_is_no_leak() -> None:
    # [2011-03-03, +90 days) ends at the validation cut 2011-06-01 (absolute time).
    train = datetime(2011, 6, 1, tzinfo=LONDON).astimezone(UTC) - QUARTER.horizon
    stated = StatedCuts(_london(2011, 9, 1), _london(2011, 6, 1), (train.astimezone(LONDON),))
    assert stated_cuts(FIRST, LAST, QUARTER, stated, 8)[0] == train


@pytest.mark.parametrize(
    ("stated", "named"),
    [
        (StatedCuts(test=_london(2011, 10, 1)), "test cut 2011-10-01T00:00:00+01:00"),
        (
            StatedCuts(_london(2011, 9, 1), _london(2011, 6, 1), (_london(2010, 12, 20),)),
            "training cut 2010-12-20T00:00:00+00:00: its 30-day lookback",
        ),
        (StatedCuts(validation=_london(2011, 6, 1)), "a validation or training cut"),
    ],
    ids=["test-labels-past-the-lake", "lookback-before-the-lake", "no-test-cut"],
)
def test_cuts_the_lake_cannot_hold_are_refused(stated: StatedCuts, named: str) -> None:
    with pytest.raises(CutRefused, match="^" + named.replace("+", r"\+")):
        stated_cuts(FIRST, LAST, QUARTER, stated, max_snapshots=8)


def test_a_date_is_the_shops_local_midnight() -> None:
    london = SnapshotSettings.model_validate(
        {"timezone": "Europe/London", "test_as_of": "2011-09-01", "train_as_of": ["2011-01-05"]}
    )
    assert london.test_as_of == datetime(2011, 8, 31, 23, tzinfo=UTC)  # BST is UTC+1
    assert london.test_as_of is not None and london.test_as_of.isoformat().endswith("+01:00")
    assert london.train_as_of == (datetime(2011, 1, 5, tzinfo=UTC),)  # GMT in winter
    # A cut with its own offset keeps its instant, shown in the shop's zone.
    tokyo = SnapshotSettings(timezone="Asia/Tokyo", test_as_of="2011-09-01T00:00:00Z")  # type: ignore[arg-type]
    assert tokyo.test_as_of is not None and tokyo.test_as_of.isoformat() == (
        "2011-09-01T09:00:00+09:00"
    )
    # The default zone is UTC: a date is UTC midnight.
    assert SnapshotSettings(test_as_of="2011-09-01").test_as_of == datetime(2011, 9, 1, tzinfo=UTC)  # type: ignore[arg-type]


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        SnapshotSettings(timezone="Europe/Londn")


def test_stated_cuts_are_the_snapshot_times_in_utc_and_recorded_with_their_offset() -> None:
    cuts = (_london(2011, 6, 1), _london(2011, 9, 1))
    config = SnapshotConfig(start=cuts[0], end=cuts[-1], cuts=cuts, timezone="Europe/London")
    assert config.snapshot_times() == [
        datetime(2011, 5, 31, 23, tzinfo=UTC), datetime(2011, 8, 31, 23, tzinfo=UTC)
    ]  # fmt: skip
    assert config.model_dump(mode="json")["cuts"] == [
        "2011-06-01T00:00:00+01:00", "2011-09-01T00:00:00+01:00"
    ]  # fmt: skip


def test_the_slide_rule_starts_at_the_shops_midnight() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    windows = Windows(lookback=30 * DAY, slide=14 * DAY, horizon=14 * DAY)
    span = snapshot_span(FIRST, FIRST + 120 * DAY, windows, 8, tokyo)
    assert span is not None
    local = span[0].astimezone(tokyo)
    assert local.time() == datetime.min.time() and span[0].utcoffset() == timedelta(hours=9)
