"""Where a lake's training snapshots go, and which settings fit a lake too short for them.

Pure functions of the lake's first and last event times. A plan needs three snapshots at
least (test, validation, train), one ``slide`` apart, each with its whole ``lookback`` of
events before it and its whole ``horizon`` of labels after it, and label windows that do not
reach the next snapshot (``slide >= horizon``, the rule ``training.data.split_cutoffs``
enforces): ``lookback + 2 × slide + horizon`` within the lake, plus up to a day because the
first snapshot falls on a whole day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = timedelta(days=1)
#: The shortest lookback a suggestion proposes (a week: every weekday seen once).
MIN_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class Windows:
    lookback: timedelta
    slide: timedelta
    horizon: timedelta

    def as_command(self) -> str:
        """The settings as environment variables before ``propensity train``."""
        return (
            f"PROPENSITY_SNAPSHOTS__LOOKBACK=P{self.lookback.days}D "
            f"PROPENSITY_SNAPSHOTS__SLIDE=P{self.slide.days}D "
            f"PROPENSITY_SNAPSHOTS__HORIZON=P{self.horizon.days}D propensity train"
        )


def whole_day(moment: datetime, *, up: bool) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day + DAY if up and day != moment else day


def snapshot_span(
    first: datetime, last: datetime, windows: Windows, max_snapshots: int
) -> tuple[datetime, datetime] | None:
    """(first snapshot, last possible snapshot) of the latest snapshots that fit the lake,
    or None when fewer than three fit or label windows would reach the next snapshot."""
    if windows.slide < windows.horizon:
        return None
    end = last - windows.horizon
    start = max(first + windows.lookback, end - windows.slide * (max_snapshots - 1))
    start = whole_day(start, up=True)
    return (start, end) if start <= end - windows.slide * 2 else None


def fitting_windows(first: datetime, last: datetime, wanted: Windows) -> Windows | None:
    """Settings close to ``wanted`` that fit the lake: the horizon kept if it can be (it is the
    question the score answers), else shortened a day at a time; the slide equal to the
    horizon (the most snapshots); the lookback as wanted or as long as still fits, never
    under ``MIN_LOOKBACK`` (or the wanted one if shorter). None when nothing fits."""
    span_days = (last - first) // DAY
    shortest = min(wanted.lookback, MIN_LOOKBACK)
    for horizon_days in range(max(wanted.horizon // DAY, 1), 0, -1):
        horizon = timedelta(days=horizon_days)
        room = timedelta(days=span_days) - 3 * horizon - DAY
        lookback = min(wanted.lookback, timedelta(days=room.days))
        if lookback >= shortest:
            return Windows(lookback=lookback, slide=horizon, horizon=horizon)
    return None


class LakeTooShort(ValueError):
    """The lake cannot hold the snapshot plan; ``hint`` is the command to paste, if any fits."""

    def __init__(self, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.hint = hint


def lake_too_short(first: datetime, last: datetime, wanted: Windows) -> LakeTooShort:
    """The error for a lake too short for ``wanted``, with the settings that fit as its hint."""
    fits = fitting_windows(first, last, wanted)
    hint = fits.as_command() if fits is not None else None
    return LakeTooShort(too_short_message(first, last, wanted), hint)


def too_short_message(first: datetime, last: datetime, wanted: Windows) -> str:
    """Why the snapshots do not fit, and the settings that do, as a command to paste."""
    days = (last - first) // DAY
    said = (
        f"the lake spans {first:%Y-%m-%d}..{last:%Y-%m-%d} ({days} days): too short for three "
        f"snapshots with a {wanted.lookback.days}-day lookback, a {wanted.slide.days}-day "
        f"slide and a {wanted.horizon.days}-day horizon (they need lookback + 2 × slide + "
        "horizon within the lake, and a slide at least the horizon)"
    )
    fits = fitting_windows(first, last, wanted)
    if fits is None:
        return f"{said}; no settings fit {days} days of events: ingest more history"
    return f"{said}. Settings that fit this lake:\n  {fits.as_command()}"
