"""How summaries look in a terminal: rich tables and progress bars, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.ingest.incremental import FilesReport
from features.ingest.pipeline import IngestReport

if TYPE_CHECKING:
    from propensity.campaign_rounds import RoundSummary
    from propensity.uplift_check import UpliftCheck
    from serving.batch.outputs import ScoringSummary
    from serving.campaign.statistics import SegmentMeasurement
    from serving.policy.lift import LiftModel


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
    if report.ignored:
        table.add_row("ignored", f"{report.ignored_total:,}")
        for name, count in report.ignored.items():
            table.add_row(f"  {name}", f"{count:,}")
    table.add_row("visitors", f"{report.visitors:,}")
    table.add_row("first event", str(report.first_event or "-"))
    table.add_row("last event", str(report.last_event or "-"))
    if report.contacts_updated:
        table.add_row("contacts updated", f"{report.contacts_updated:,}")
    if report.quarantine_file:
        table.add_row("quarantine file", report.quarantine_file)
    return table


def files_table(report: FilesReport) -> Table:
    """One row per file of a multi-file ingest, then the total."""
    table = Table(title="ingest", title_justify="left")
    for name in ("file", "status", "rows read", "accepted", "duplicates", "quarantined"):
        table.add_column(name, justify="left" if name in ("file", "status") else "right")
    for entry in report.files:
        counts = [
            f"{entry[key]:,}" if key in entry else "-"
            for key in ("rows_read", "accepted", "duplicates")
        ]
        quarantined = sum(entry["quarantined"].values()) if "quarantined" in entry else None
        status = entry["status"] + (f": {entry['error']}" if "error" in entry else "")
        table.add_row(
            entry["file"], status, *counts, "-" if quarantined is None else f"{quarantined:,}"
        )
    total = report.total()
    table.add_row(
        f"total: {total['files']} files",
        f"{total['ingested']} ingested, {total['skipped']} skipped, {total['failed']} failed",
        f"{total['rows_read']:,}",
        f"{total['accepted']:,}",
        f"{total['duplicates']:,}",
        f"{sum(total['quarantined'].values()):,}",
        style="bold",
    )
    return table


#: What ``propensity train`` shows of each part, (metric, header): validation (where the
#: choice is made) and the out-of-time test (what the chosen model is expected to do).
_VALIDATION_COLUMNS = (("roc_auc", "val\nAUC"), ("log_loss", "val\nlog loss"))
_TEST_COLUMNS = (
    ("roc_auc", "test\nAUC"),
    ("pr_auc", "test\nPR-AUC"),
    ("log_loss", "test\nlog loss"),
    ("ece", "test\nECE"),
    ("lift_top10", "test\nlift@10%"),
)


def metrics_table(metrics: Mapping[str, Mapping[str, Any]], chosen: str) -> Table:
    """Every model's validation metrics (the choice is made there) beside its out-of-time
    test metrics; the chosen one in bold, the rule in the caption. Fits 80 columns."""
    from training.evaluation import SELECTION_RULE  # the CLI starts without scikit-learn

    table = Table(title="validation | out-of-time test", title_justify="left")
    table.add_column("model", no_wrap=True)
    for _, header in (*_VALIDATION_COLUMNS, *_TEST_COLUMNS):
        table.add_column(header, justify="right", no_wrap=True)
    for name, parts in metrics.items():
        validation, test = parts.get("validation", {}), parts.get("test", {})
        cells = [_cell(validation.get(c), 3) for c, _ in _VALIDATION_COLUMNS]
        cells += [_cell(test.get(c), 3) for c, _ in _TEST_COLUMNS]
        table.add_row(f"[bold]{name}[/]" if name == chosen else name, *cells)
    table.caption = SELECTION_RULE
    return table


def _cell(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def scoring_table(summary: ScoringSummary) -> Table:
    """Visitors per decile (1 = top 10% of scores) and route, with totals."""
    from serving.policy.routing import ROUTES

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
    if summary.known_visitors is not None and summary.feature_window_days is not None:
        left = summary.known_visitors - summary.visitors
        table.caption = (
            f"scored {summary.visitors:,} of the {summary.known_visitors:,} visitors seen before "
            f"as_of: the other {left:,} had no event in the model's "
            f"{summary.feature_window_days:g}-day feature window\n" + table.caption
        )
    detectable = [
        f"{name} {holdout['mde'] * 100:.2f} pp ({holdout['held_out']:,.0f} held out, "
        f"{holdout.get('explored', 0):,.0f} sent to explore)"
        for name, holdout in summary.extra.get("holdout_mde", {}).items()  # type: ignore[attr-defined]
        if holdout["treated"] and holdout["held_out"]
    ]
    if detectable:
        table.caption += "\nsmallest effect this run's holdout detects: " + ", ".join(detectable)
    return table


def _interval(low: float, high: float, digits: int) -> str:
    return f"[{low:,.{digits}f}, {high:,.{digits}f}]"


def measurement_table(
    segments: list[SegmentMeasurement], title: str, truth: dict[str, float] | None = None
) -> Table:
    """One row per segment and outcome: treated vs control, the difference with its interval,
    the p-value, and the incremental outcome among the treated. Rates in percent. ``truth``:
    a simulated round's true mean effect per route, shown beside its converted row."""
    table = Table(title=title, title_justify="left")
    table.add_column("segment")
    table.add_column("outcome")
    names = ["n treated/control", "treated", "control", "difference", "p", "incremental"]
    for name in names + (["true effect"] if truth else []):
        table.add_column(name, justify="right")
    for segment in segments:
        label = segment.segment if segment.by == "all" else f"{segment.by}={segment.segment}"
        known = (truth or {}).get(segment.segment) if segment.by == "route_group" else None
        for rate in segment.rates:
            true = [f"{known * 100:+.2f} pp" if known is not None else ""] if truth else []
            table.add_row(
                label, rate.outcome, f"{rate.treated:,}/{rate.control:,}",
                f"{rate.treated_rate:.2%}", f"{rate.control_rate:.2%}",
                f"{rate.difference * 100:+.2f} pp "
                + _interval(rate.difference_low * 100, rate.difference_high * 100, 2),
                f"{rate.p_value:.2g}",
                f"{rate.incremental:+,.1f} "
                + _interval(rate.incremental_low, rate.incremental_high, 1),
                *true,
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
                *([""] if truth else []),
                style="bold" if mean.significant else None,
            )  # fmt: skip
    table.caption = "95% intervals by default; bold: significant at the chosen level"
    return table


def round_table(summary: RoundSummary) -> Table:
    """Per channel: contacted, orders caused and prevented, and the true effect."""
    table = Table(
        title=f"campaign round {summary.run_id}\noutcomes {summary.as_of:%Y-%m-%d %H:%M} .. "
        f"{summary.window_end:%Y-%m-%d %H:%M} UTC",
        title_justify="left",
    )
    for name in ("channel", "contacted", "caused", "prevented", "true effect", "true buyers"):
        table.add_column(name, justify="left" if name == "channel" else "right")
    for channel, contacted in summary.contacted.items():
        table.add_row(
            channel,
            f"{contacted:,}",
            f"{summary.caused[channel]:,}",
            f"{summary.prevented[channel]:,}",
            f"{summary.true_mean_effect[channel] * 100:+.2f} pp",
            f"{summary.true_incremental_buyers[channel]:+,.1f}",
        )
    table.caption = "true effect: mean Δp among the contacted; true buyers: its sum"
    return table


def lift_table(model: LiftModel) -> Table:
    """Per channel and score band: the learned Δp with its interval, the measurement and
    the assumption it was shrunk toward, in percentage points."""
    table = Table(title=f"lift {model.fit_id} from {len(model.runs)} run(s)", title_justify="left")
    for name in ("channel", "band", "treated/control", "measured", "assumed", "learned"):
        table.add_column(name, justify="left" if name == "channel" else "right")
    ranked = [(f"{c} (uplift)", lift) for c, lift in model.uplift.items()]
    for channel, lift in [*model.channels.items(), *ranked]:
        for band in lift.bands:
            measured = "-" if band.observed is None else f"{band.observed * 100:+.2f}"
            table.add_row(
                channel,
                f"{band.lo:.4f}-{band.hi:.4f}",
                f"{band.treated:,}/{band.control:,}",
                measured,
                f"{band.prior * 100:+.2f}",
                f"{band.delta * 100:+.2f} [{band.low * 100:+.2f}, {band.high * 100:+.2f}]",
            )
    shapes = "; ".join(
        f"{channel} P(effect ∝ score) {lift.proportional:.2f}"
        for channel, lift in model.channels.items()
        if lift.proportional is not None
    )
    table.caption = (
        (f"{shapes}\n" if shapes else "")
        + f"Δp in pp; {model.confidence:.0%} intervals; band: of the score, or (uplift) of "
        f"the prediction of {', '.join(model.uplift_models().values()) or 'an uplift model'}; "
        f"plot: lift/{model.fit_id}/lift.png"
    )
    return table


def uplift_table(checks: list[UpliftCheck]) -> Table:
    """Per channel: the Qini of the uplift model, the lift curve and the score on the
    validation run, and the verdict."""
    run = checks[0].validation_run if checks else ""
    table = Table(title=f"uplift check, validated on run {run}", title_justify="left")
    for name in ("channel", "train/valid units", "Qini uplift", "Qini lift", "Qini score"):
        table.add_column(name, justify="left" if name == "channel" else "right")
    table.add_column("verdict")

    def qini(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    for check in checks:
        table.add_row(
            check.channel, f"{check.train_units:,}/{check.validation_units:,}",
            qini(check.qini_uplift), qini(check.qini_lift), qini(check.qini_score),
            check.verdict,
        )  # fmt: skip
    table.caption = "Qini coefficient: incremental conversions over random targeting, per unit"
    return table
