"""What ``propensity export`` prints: per reason, how many were exported and left out."""

from __future__ import annotations

from rich.table import Table

from serving.activation.export import ExportSummary


def export_table(summary: ExportSummary) -> Table:
    table = Table(
        title=f"export of run {summary.run_id}, route {summary.route}, to {summary.destination}",
        title_justify="left",
    )
    table.add_column("visitors")
    table.add_column("count", justify="right")
    table.add_row("in the run's audience", f"{summary.audience:,}")
    for reason, count in summary.left_out.items():
        table.add_row(f"left out: {reason.replace('_', ' ')}", f"{count:,}")
    table.add_row("exported", f"{summary.exported:,}", style="bold")
    for outcome, count in summary.delivery.items():
        table.add_row(f"posted to GA4: {outcome.replace('_', ' ')}", f"{count:,}")
    table.caption = "files: " + ", ".join(summary.files)
    return table
