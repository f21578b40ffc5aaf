"""How a scoring run looks in a terminal: one rich table of visitors per decile and route."""

from __future__ import annotations

from rich.table import Table

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
