"""Weekly and hourly seasonality of session intensity, as an exact piecewise-constant rate.

The intensity multiplier ``s(t)`` is constant within each UTC hour of the week: the hour of
day profile ``HOUR_PROFILE`` times ``weekend_factor`` on Saturday and Sunday, scaled so that
its mean over a week is 1. A visitor's session rate "per day" is therefore the rate at average
seasonality. Seasonal time ``S(t) = ∫ s(u) du`` (in days, from a reference Monday) is piecewise
linear, so both it and its inverse are computed exactly by linear interpolation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Relative session intensity by UTC hour of day: quiet nights, a lunch and an evening peak.
HOUR_PROFILE: tuple[float, ...] = (
    0.35, 0.22, 0.15, 0.12, 0.12, 0.18, 0.35, 0.60, 0.85, 1.00, 1.10, 1.20,
    1.30, 1.25, 1.15, 1.10, 1.10, 1.20, 1.40, 1.60, 1.70, 1.50, 1.10, 0.65,
)  # fmt: skip

US_PER_HOUR = 3_600_000_000
HOURS_PER_WEEK = 168
#: 1970-01-05T00:00:00Z, a Monday, in microseconds since the Unix epoch.
REFERENCE_MONDAY_US = 4 * 24 * US_PER_HOUR
_WEEK_KNOTS = np.arange(HOURS_PER_WEEK + 1, dtype=np.float64)


def _cumulative_weights() -> tuple[FloatArray, FloatArray]:
    """Cumulative raw hour weights over a week, split into weekday and weekend parts."""
    hours = np.tile(np.asarray(HOUR_PROFILE, dtype=np.float64), 7)
    weekend = np.arange(HOURS_PER_WEEK) >= 5 * 24  # Monday is day 0, so days 5 and 6
    weekday_part = np.concatenate([[0.0], np.cumsum(np.where(weekend, 0.0, hours))])
    weekend_part = np.concatenate([[0.0], np.cumsum(np.where(weekend, hours, 0.0))])
    return weekday_part, weekend_part


_WEEKDAY_CUM, _WEEKEND_CUM = _cumulative_weights()
_DAY_WEIGHT = float(sum(HOUR_PROFILE))


def _week_table(weekend_factor: float | FloatArray, knots: FloatArray) -> FloatArray:
    """Seasonal days elapsed since Monday 00:00 at hour-of-week ``knots`` (0..168)."""
    weekday = np.interp(knots, _WEEK_KNOTS, _WEEKDAY_CUM)
    weekend = np.interp(knots, _WEEK_KNOTS, _WEEKEND_CUM)
    # Normalised so that a whole week is worth exactly 7 seasonal days.
    scale = 7.0 / ((5.0 + 2.0 * np.asarray(weekend_factor)) * _DAY_WEIGHT)
    return np.asarray((weekday + np.asarray(weekend_factor) * weekend) * scale, dtype=np.float64)


def seasonal_days(times_us: IntArray, weekend_factor: float | FloatArray) -> FloatArray:
    """``S(t)``: seasonal time in days since the reference Monday, for UTC microsecond times.

    ``weekend_factor`` may be a scalar or one value per time.
    """
    hours = (np.asarray(times_us, dtype=np.int64) - REFERENCE_MONDAY_US) / US_PER_HOUR
    weeks = np.floor(hours / HOURS_PER_WEEK)
    within = hours - weeks * HOURS_PER_WEEK
    return weeks * 7.0 + _week_table(weekend_factor, within)


def inverse_seasonal_days(seasonal: FloatArray, weekend_factor: float) -> IntArray:
    """The UTC microsecond time ``t`` with ``S(t) = seasonal`` (exact up to rounding)."""
    weeks = np.floor(seasonal / 7.0)
    table = _week_table(weekend_factor, _WEEK_KNOTS)
    hours = weeks * HOURS_PER_WEEK + np.interp(seasonal - weeks * 7.0, table, _WEEK_KNOTS)
    return np.rint(hours * US_PER_HOUR).astype(np.int64) + REFERENCE_MONDAY_US


def weekly_multiplier(weekend_factor: float) -> FloatArray:
    """``s`` for each of the 168 hours of the week (Monday 00:00 first); mean 1."""
    return np.diff(_week_table(weekend_factor, _WEEK_KNOTS)) * 24.0
