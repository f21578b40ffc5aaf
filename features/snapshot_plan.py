"""Where a lake's training snapshots go, and which settings fit a lake too short for them.

Pure functions of the lake's first and last event times. Cuts are either stated (a test cut,
optionally a validation cut and training cuts: ``stated_cuts``) or follow the start/slide
rule (``snapshot_span``). Either way the first cut falls on the shop's local midnight, and
a cut's label window ``[T, T + horizon)`` is measured in absolute time (a day-light saving
change inside it moves nothing). A plan needs three snapshots at
least (test, validation, train), one ``slide`` apart, each with its whole ``lookback`` of
events before it and its whole ``horizon`` of labels after it, and label windows that do not
reach the next snapshot (``slide >= horizon``, the rule ``training.data.split_cutoffs``
enforces): ``lookback + 2 × slide + horizon`` within the lake, plus up to a day because the
first snapshot falls on a whole day. A full-history lookback (``None``) reads whatever each
cut has before it, so a cut needs only one event before it, not a whole lookback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

DAY = timedelta(days=1)
#: The shortest lookback a suggestion proposes (a week: every weekday seen once).
MIN_LOOKBACK = timedelta(days=7)
#: What a full-history cut needs before it: one event (a microsecond after the first).
_ONE_EVENT = timedelta(microseconds=1)


@dataclass(frozen=True)
class Windows:
    lookback: timedelta | None  # None: full history
    slide: timedelta
    horizon: timedelta

    def earliest_cut(self, first: datetime) -> datetime:
        """The earliest cut whose features have what they read: the whole lookback after the
        lake's first event, or (full history) any event before the cut."""
        return first + (self.lookback or _ONE_EVENT)

    def as_command(self) -> str:
        """The settings as environment variables before ``propensity train``."""
        lookback = "all" if self.lookback is None else f"P{self.lookback.days}D"
        return (
            f"PROPENSITY_SNAPSHOTS__LOOKBACK={lookback} "
            f"PROPENSITY_SNAPSHOTS__SLIDE=P{self.slide.days}D "
            f"PROPENSITY_SNAPSHOTS__HORIZON=P{self.horizon.days}D propensity train"
        )


def whole_day(moment: datetime, *, up: bool, zone: tzinfo = UTC) -> datetime:
    """The local midnight in ``zone`` on or after (``up``) or on or before ``moment``."""
    local = moment.astimezone(zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if up and day != local:
        day += DAY  # wall-clock arithmetic in the zone: the next local midnight
    return day


def snapshot_span(
    first: datetime, last: datetime, windows: Windows, max_snapshots: int, zone: tzinfo = UTC
) -> tuple[datetime, datetime] | None:
    """(first snapshot, last possible snapshot) of the latest snapshots that fit the lake,
    or None when fewer than three fit or label windows would reach the next snapshot. The
    first snapshot is a local midnight in ``zone``; the later ones follow it by ``slide``."""
    if windows.slide < windows.horizon:
        return None
    end = last - windows.horizon
    start = max(windows.earliest_cut(first), end - windows.slide * (max_snapshots - 1))
    start = whole_day(start, up=True, zone=zone)
    return (start, end) if start <= end - windows.slide * 2 else None


class CutRefused(ValueError):
    """A stated cut the plan cannot use; the message names the cut and why, ``hint`` the fix."""

    def __init__(self, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class StatedCuts:
    """Cuts a user gave (aware datetimes in the shop's zone); the missing ones are derived."""

    test: datetime | None = None
    validation: datetime | None = None
    train: tuple[datetime, ...] = ()

    def __bool__(self) -> bool:
        return self.test is not None or self.validation is not None or bool(self.train)


def _shown(moment: datetime) -> str:
    return moment.isoformat()


def _ends(cut: datetime, span: timedelta) -> datetime:
    """``cut + span`` in absolute time, shown in the cut's own zone."""
    return (cut.astimezone(UTC) + span).astimezone(cut.tzinfo)


def _days(span: timedelta | None) -> str:
    if span is None:
        return "full-history"
    return f"{span.days}-day" if span % DAY == timedelta(0) else str(span)


def _refuse_leak(cut: datetime, role: str, later: datetime, later_role: str, h: timedelta) -> None:
    """The leak rule: a cut's label window ``[cut, cut + h)`` must end by the next part's cut."""
    if _ends(cut, h) > later:
        raise CutRefused(
            f"{role} cut {_shown(cut)}: its {_days(h)} label window [{_shown(cut)}, "
            f"{_shown(_ends(cut, h))}) reaches past the {later_role} cut {_shown(later)}, so "
            f"{role} labels would overlap the {later_role} period (a leak)",
            f"state {role} cuts on or before {_shown(_ends(later, -h))} (the {later_role} cut "
            "minus the horizon)",
        )


def _refuse_short_history(cut: datetime, role: str, first: datetime, windows: Windows) -> None:
    if cut >= windows.earliest_cut(first):
        return
    shown_first = _shown(first.astimezone(cut.tzinfo))
    if windows.lookback is None:
        raise CutRefused(
            f"{role} cut {_shown(cut)}: no event before it (the lake's first event is "
            f"{shown_first}), so its full-history features would be empty",
            f"state a cut after {shown_first}",
        )
    raise CutRefused(
        f"{role} cut {_shown(cut)}: its {_days(windows.lookback)} lookback starts before the "
        f"lake's first event {shown_first}, so its features would miss history",
        f"state a cut on or after {_shown(first.astimezone(cut.tzinfo) + windows.lookback)}, "
        "shorten PROPENSITY_SNAPSHOTS__LOOKBACK or set it to all (full history)",
    )


def stated_cuts(
    first: datetime,
    last: datetime,
    windows: Windows,
    stated: StatedCuts,
    max_snapshots: int,
) -> list[datetime]:
    """Every cut of a plan with stated cuts, oldest first (aware, in the stated zone).

    A test cut is required; a missing validation cut is the test cut minus ``slide``, and
    missing training cuts step back from the validation cut by ``slide`` while their
    lookback fits the lake (``max_snapshots`` in all), each rounded down to local midnight.
    A stated cut is refused (``CutRefused``, naming it) when its label window reaches past
    the next part's cut, its lookback starts before the lake, or the test labels end after
    the lake's last event; nothing stated is dropped silently."""
    if stated.test is None:
        raise CutRefused(
            "a validation or training cut was stated without a test cut",
            "add --test-as-of (PROPENSITY_SNAPSHOTS__TEST_AS_OF): the other cuts are placed "
            "before it",
        )
    test, zone = stated.test, stated.test.tzinfo or UTC
    if _ends(test, windows.horizon) > last:
        raise CutRefused(
            f"test cut {_shown(test)}: its {_days(windows.horizon)} label window ends "
            f"{_shown(_ends(test, windows.horizon))}, after the lake's last event "
            f"{_shown(last.astimezone(zone))}, so the test labels are not all observed",
            f"state a test cut on or before {_shown(last.astimezone(zone) - windows.horizon)}",
        )
    # Derived cuts step back by at least a horizon in absolute time, then down to midnight:
    # a day-light saving change between them cannot make a label window reach the next cut.
    step = max(windows.slide, windows.horizon)
    validation = stated.validation or whole_day(_ends(test, -step), up=False, zone=zone)
    _refuse_leak(validation, "validation", test, "test", windows.horizon)
    train = sorted(set(stated.train)) or _derived_training(
        first, validation, windows, max_snapshots - 2
    )
    if not train:
        raise CutRefused(
            f"no training cut fits before the validation cut {_shown(validation)}: one needs "
            f"its {_days(windows.lookback)} lookback after the lake's first event "
            f"{_shown(first.astimezone(zone))} and its label window ending by the validation cut",
            "state an earlier --validation-as-of, a shorter lookback, or ingest more history",
        )
    for cut in train:
        _refuse_leak(cut, "training", validation, "validation", windows.horizon)
    roles = [*((c, "training") for c in train), (validation, "validation"), (test, "test")]
    for cut, role in roles:
        _refuse_short_history(cut, role, first, windows)
    return [*train, validation, test]


def _derived_training(
    first: datetime, validation: datetime, windows: Windows, most: int
) -> list[datetime]:
    """Training cuts one ``slide`` apart before the validation cut, whose lookback fits."""
    zone, cuts = validation.tzinfo or UTC, list[datetime]()
    step = max(windows.slide, windows.horizon)
    cut = whole_day(_ends(validation, -step), up=False, zone=zone)
    while len(cuts) < most and cut >= windows.earliest_cut(first):
        cuts.append(cut)
        cut = whole_day(_ends(cut, -step), up=False, zone=zone)
    return sorted(cuts)


def describe_cuts(cuts: Sequence[datetime]) -> str:
    """Cuts for a log line or a run param: ISO 8601 with their offset, comma-separated."""
    return ",".join(_shown(c) for c in cuts)


def fitting_windows(first: datetime, last: datetime, wanted: Windows) -> Windows | None:
    """Settings close to ``wanted`` that fit the lake: the horizon kept if it can be (it is the
    question the score answers), else shortened a day at a time; the slide equal to the
    horizon (the most snapshots); the lookback as wanted or as long as still fits, never
    under ``MIN_LOOKBACK`` (or the wanted one if shorter), or full history kept. None when
    nothing fits."""
    span_days = (last - first) // DAY
    for horizon_days in range(max(wanted.horizon // DAY, 1), 0, -1):
        horizon = timedelta(days=horizon_days)
        room = timedelta(days=span_days) - 3 * horizon - DAY
        if wanted.lookback is None:  # full history needs no room of its own
            if room >= timedelta(0):
                return Windows(lookback=None, slide=horizon, horizon=horizon)
            continue
        shortest = min(wanted.lookback, MIN_LOOKBACK)
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
        f"snapshots with a {_days(wanted.lookback)} lookback, a {wanted.slide.days}-day "
        f"slide and a {wanted.horizon.days}-day horizon (they need lookback + 2 × slide + "
        "horizon within the lake, and a slide at least the horizon)"
    )
    fits = fitting_windows(first, last, wanted)
    if fits is None:
        return f"{said}; no settings fit {days} days of events: ingest more history"
    return f"{said}. Settings that fit this lake:\n  {fits.as_command()}"
