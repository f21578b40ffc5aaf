"""How a scoring run and its measurement look in a terminal: rich tables."""

from __future__ import annotations

from rich.table import Table

from serving.measurement import SegmentMeasurement
from serving.outputs import ScoringSummary
from serving.routing import ROUTES


def scoring_table(summary: ScoringSummary) -> Table:
    """Visitors per decile (1 = top 10% of scores) and route, with totals."""
    state = " (already published: nothing changed)" if summary.skipped else ""
    table = Table(
        title=f"scoring run {summary.run_id}{state}\nas of {summary.as_of:%Y-%m-%d %H:%M:%S} "
        f"UTC, model version {summary.model_version}",
        title_justify="left",
    )
    table.add_column("decile", justify="right")
    for route in ROUTES:
        table.add_column(route, justify="right")
    table.add_column("visitors", justify="right", style="bold")
    for decile in sorted(summary.deciles):
        counts = summary.deciles[decile]
        table.add_row(
            str(decile), *(f"{counts.get(r, 0):,}" for r in ROUTES), f"{sum(counts.values()):,}"
        )
    table.add_row(
        "all",
        *(f"{summary.routes.get(r, 0):,}" for r in ROUTES),
        f"{summary.visitors:,}",
        style="bold",
    )
    table.caption = f"ad spend {summary.ads_spend:,.2f}; files in {summary.run_dir}"
    return table


def _interval(low: float, high: float, digits: int) -> str:
    return f"[{low:,.{digits}f}, {high:,.{digits}f}]"


def measurement_table(segments: list[SegmentMeasurement], title: str) -> Table:
    """One row per segment and outcome: treated vs control, the difference with its interval,
    the p-value, and the incremental outcome among the treated. Rates in percent."""
    table = Table(title=title, title_justify="left")
    table.add_column("segment")
    table.add_column("outcome")
    for name in ("n treated/control", "treated", "control", "difference", "p", "incremental"):
        table.add_column(name, justify="right")
    for segment in segments:
        label = segment.segment if segment.by == "all" else f"{segment.by}={segment.segment}"
        for rate in segment.rates:
            table.add_row(
                label, rate.outcome, f"{rate.treated:,}/{rate.control:,}",
                f"{rate.treated_rate:.2%}", f"{rate.control_rate:.2%}",
                f"{rate.difference * 100:+.2f} pp "
                + _interval(rate.difference_low * 100, rate.difference_high * 100, 2),
                f"{rate.p_value:.2g}",
                f"{rate.incremental:+,.1f} "
                + _interval(rate.incremental_low, rate.incremental_high, 1),
                style="bold" if rate.significant else None,
            )  # fmt: skip
        for mean in segment.means:
            table.add_row(
                label, mean.outcome, f"{mean.treated:,}/{mean.control:,}",
                f"{mean.treated_mean:,.3f}", f"{mean.control_mean:,.3f}",
                f"{mean.difference:+,.3f} "
                + _interval(mean.difference_low, mean.difference_high, 3),
                f"{mean.p_value:.2g}",
                f"{mean.incremental:+,.0f} "
                + _interval(mean.incremental_low, mean.incremental_high, 0),
                style="bold" if mean.significant else None,
            )  # fmt: skip
    table.caption = "95% intervals by default; bold: significant at the chosen level"
    return table
