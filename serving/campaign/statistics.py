"""Did the contact change anything? Treated versus control (holdout) on observed outcomes.

Pure: a frame with one row per unit (visitor, customer) in, comparisons out. Works on any
randomised split, a scoring run's holdout (``serving.campaign.runs``) or an experiment table such
as Hillstrom's e-mail test.

- Rates (0/1 outcomes: converted, visited): difference of proportions treated − control with
  Newcombe's hybrid score interval (from the two Wilson intervals; it keeps its coverage near
  0 and 1 where the Wald interval does not) and a two-sided pooled two-proportion z-test.
- Means (revenue, spend): Welch's t-test and its interval on the difference of means.
- Incremental outcome: the difference times the number treated (conversions or revenue the
  contact caused among the treated), with the same interval scaled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

#: Segment name of the whole population.
ALL = "all"


class MeasurementSettings(BaseModel):
    """How ``propensity measure`` judges a scoring run: outcome window and confidence."""

    model_config = ConfigDict(frozen=True)

    horizon: timedelta | None = Field(
        None,
        description="outcomes counted in [as_of, as_of + horizon) [default: the label window "
        "of the model that scored the run]",
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="confidence level of the intervals")


@dataclass(frozen=True)
class RateComparison:
    """A 0/1 outcome, treated versus control; ``difference`` = treated rate − control rate."""

    outcome: str
    treated: int
    control: int
    treated_successes: int
    control_successes: int
    treated_rate: float
    control_rate: float
    difference: float
    difference_low: float
    difference_high: float
    z: float
    p_value: float
    incremental: float
    incremental_low: float
    incremental_high: float
    significant: bool


@dataclass(frozen=True)
class MeanComparison:
    """A numeric outcome (revenue), treated versus control, per unit."""

    outcome: str
    treated: int
    control: int
    treated_mean: float
    control_mean: float
    difference: float
    difference_low: float
    difference_high: float
    p_value: float
    incremental: float
    incremental_low: float
    incremental_high: float
    significant: bool


@dataclass(frozen=True)
class SegmentMeasurement:
    """Every outcome compared within one segment (``all``, a route, a decile)."""

    by: str
    segment: str
    rates: tuple[RateComparison, ...]
    means: tuple[MeanComparison, ...]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def wilson_interval(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN without trials)."""
    if trials == 0:
        return math.nan, math.nan
    interval = stats.binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def compare_rates(
    outcome: str,
    treated_successes: int,
    treated: int,
    control_successes: int,
    control: int,
    confidence: float = 0.95,
) -> RateComparison:
    """Difference of two proportions with Newcombe's interval and the pooled z-test."""
    p1 = treated_successes / treated if treated else math.nan
    p0 = control_successes / control if control else math.nan
    low1, high1 = wilson_interval(treated_successes, treated, confidence)
    low0, high0 = wilson_interval(control_successes, control, confidence)
    difference = p1 - p0
    low = difference - math.sqrt((p1 - low1) ** 2 + (high0 - p0) ** 2)
    high = difference + math.sqrt((high1 - p1) ** 2 + (p0 - low0) ** 2)
    z, p_value = _pooled_z_test(treated_successes, treated, control_successes, control)
    return RateComparison(
        outcome=outcome, treated=treated, control=control,
        treated_successes=treated_successes, control_successes=control_successes,
        treated_rate=p1, control_rate=p0, difference=difference,
        difference_low=low, difference_high=high, z=z, p_value=p_value,
        incremental=difference * treated, incremental_low=low * treated,
        incremental_high=high * treated, significant=p_value < 1 - confidence,
    )  # fmt: skip


def _pooled_z_test(x1: int, n1: int, x0: int, n0: int) -> tuple[float, float]:
    if n1 == 0 or n0 == 0:
        return math.nan, math.nan
    pooled = (x1 + x0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    difference = x1 / n1 - x0 / n0
    if se == 0:  # nobody or everybody converted in both groups: no evidence either way
        return 0.0, 1.0
    z = difference / se
    return z, float(2 * stats.norm.sf(abs(z)))


def compare_means(
    outcome: str,
    treated_values: np.ndarray,
    control_values: np.ndarray,
    confidence: float = 0.95,
) -> MeanComparison:
    """Difference of means with Welch's t-test (unequal variances) and its interval."""
    n1, n0 = len(treated_values), len(control_values)
    m1 = float(np.mean(treated_values)) if n1 else math.nan
    m0 = float(np.mean(control_values)) if n0 else math.nan
    low = high = p_value = math.nan
    # A group without any spread (a small holdout where nobody bought) makes Welch's test a
    # one-sample test against an exact zero: far too sure of itself. No interval then.
    both_vary = n1 >= 2 and n0 >= 2 and np.ptp(treated_values) > 0 and np.ptp(control_values) > 0
    if both_vary:
        test = stats.ttest_ind(treated_values, control_values, equal_var=False)
        interval = test.confidence_interval(confidence)
        low, high, p_value = float(interval.low), float(interval.high), float(test.pvalue)
    difference = m1 - m0
    return MeanComparison(
        outcome=outcome, treated=n1, control=n0, treated_mean=m1, control_mean=m0,
        difference=difference, difference_low=low, difference_high=high, p_value=p_value,
        incremental=difference * n1, incremental_low=low * n1, incremental_high=high * n1,
        significant=bool(p_value < 1 - confidence),
    )  # fmt: skip


def measure_segment(
    units: pl.DataFrame,
    *,
    treated: str,
    rates: Sequence[str],
    means: Sequence[str] = (),
    confidence: float = 0.95,
    by: str = ALL,
    segment: str = ALL,
) -> SegmentMeasurement:
    """Compare treated with control on every outcome column.

    ``units``: one row per unit; ``treated`` a boolean column (False = control/holdout);
    ``rates`` 0/1 (or boolean) outcome columns; ``means`` numeric outcome columns.
    """
    flag = units.get_column(treated).cast(pl.Boolean)
    treated_units, control_units = units.filter(flag), units.filter(~flag)
    rate_results = tuple(
        compare_rates(
            column,
            int(treated_units.get_column(column).cast(pl.Int64).sum()),
            treated_units.height,
            int(control_units.get_column(column).cast(pl.Int64).sum()),
            control_units.height,
            confidence,
        )
        for column in rates
    )
    mean_results = tuple(
        compare_means(
            column,
            treated_units.get_column(column).cast(pl.Float64).fill_null(0).to_numpy(),
            control_units.get_column(column).cast(pl.Float64).fill_null(0).to_numpy(),
            confidence,
        )
        for column in means
    )
    return SegmentMeasurement(by, segment, rate_results, mean_results)


def measure_experiment(
    units: pl.DataFrame,
    *,
    treated: str,
    rates: Sequence[str],
    means: Sequence[str] = (),
    by: Sequence[str] = (),
    confidence: float = 0.95,
) -> list[SegmentMeasurement]:
    """The whole population first, then one measurement per value of each ``by`` column."""

    def measure(part: pl.DataFrame, column: str, segment: str) -> SegmentMeasurement:
        return measure_segment(
            part, treated=treated, rates=rates, means=means, confidence=confidence,
            by=column, segment=segment,
        )  # fmt: skip

    results = [measure(units, ALL, ALL)]
    for column in by:
        parts = units.filter(pl.col(column).is_not_null()).partition_by(column, as_dict=True)
        results.extend(measure(part, column, str(key[0])) for key, part in sorted(parts.items()))
    return results


def treatment_flag(arm: pl.Series, control: Sequence[str]) -> pl.Series:
    """True for units whose arm is not one of the ``control`` values (any treatment arm)."""
    return (~arm.cast(pl.String).is_in(list(control))).alias("treated")


def rates_frame(segments: Sequence[SegmentMeasurement]) -> pl.DataFrame:
    """The rate comparisons as one frame: one row per segment and outcome."""
    return pl.DataFrame(
        [{"by": s.by, "segment": s.segment, **asdict(rate)} for s in segments for rate in s.rates]
    )
