"""How summaries look in a terminal: rich tables and progress bars, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.ingest.pipeline import IngestReport


@contextmanager
def progress_bar(
    console: Console, description: str, *, disable: bool = False
) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(rows)``; shows rows done and elapsed time on stderr."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=disable, transient=True) as progress:
        task = progress.add_task(description, total=None)
        yield lambda rows: progress.advance(task, rows)


def ingest_table(report: IngestReport) -> Table:
    table = Table(title=f"ingest {report.file}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("source", report.source)
    table.add_row("rows read", f"{report.rows_read:,}")
    table.add_row("accepted", f"{report.accepted:,}")
    table.add_row("duplicates", f"{report.duplicates:,}")
    table.add_row("quarantined", f"{report.quarantined_total:,}")
    for reason, count in report.quarantined.items():
        table.add_row(f"  {reason}", f"{count:,}")
    table.add_row("visitors", f"{report.visitors:,}")
    table.add_row("first event", str(report.first_event or "-"))
    table.add_row("last event", str(report.last_event or "-"))
    if report.contacts_updated:
        table.add_row("contacts updated", f"{report.contacts_updated:,}")
    if report.quarantine_file:
        table.add_row("quarantine file", report.quarantine_file)
    return table


def metrics_table(metrics: Mapping[str, Mapping[str, Any]], chosen: str) -> Table:
    """Out-of-time test metrics of every model; the chosen one in bold."""
    table = Table(title="out-of-time test", title_justify="left")
    columns = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    for name, parts in metrics.items():
        test = parts.get("test", {})
        cells = [_cell(test.get(column)) for column in columns]
        table.add_row(f"[bold]{name}[/]" if name == chosen else name, *cells)
    return table


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
