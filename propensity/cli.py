"""The one command line: thin commands that parse options, build settings and call the packages."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape

from propensity.logs import configure_logging
from propensity.settings import Settings
from propensity.views import ingest_table, progress_bar

app = typer.Typer(
    name="propensity",
    help="Purchase propensity scoring: ingest events, build features, train, score, route.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)
log = logging.getLogger(__name__)

JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level)
    return settings


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(code=1)


def _emit_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="event file (CSV/JSON lines/Parquet, may be .gz)")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="canonical, taobao, rees46, retailrocket, ga4, cdnow, or contacts",
        ),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="TOML column mapping for your own CSV/Parquet")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a file and append its events to the lake; quarantine what is invalid."""
    from features.ingest.batch import IngestError
    from features.ingest.contacts import ingest_contacts_file, merge_ads_consent
    from features.ingest.ga4 import read_ga4_consent
    from features.ingest.mapping import MappingError
    from features.ingest.pipeline import ingest_file, new_ingest_id
    from features.ingest.sources import resolve_source
    from features.ingest.validate import ValidationLimits

    settings = _settings()
    if not file.is_file():
        raise _fail(f"{file}: no such file")
    started = datetime.now(UTC)
    ingest_id = new_ingest_id(started)
    try:
        if fmt == "contacts":
            report = ingest_contacts_file(
                file,
                lake_dir=settings.lake_dir,
                quarantine_dir=settings.quarantine_dir,
                ingest_id=ingest_id,
            )
        else:
            source = resolve_source(fmt, mapping)
            limits = ValidationLimits(
                min_event_time=settings.ingest.min_event_time,
                max_event_time=started + settings.ingest.max_future_skew,
            )
            with progress_bar(err, f"ingesting {file.name}", disable=as_json) as advance:
                report = ingest_file(
                    file,
                    mapping=source.mapping,
                    reader=source.reader,
                    lake_dir=settings.lake_dir,
                    quarantine_dir=settings.quarantine_dir,
                    limits=limits,
                    batch_rows=settings.ingest.batch_rows,
                    ingest_id=ingest_id,
                    on_progress=advance,
                )
            if fmt == "ga4":
                report.contacts_updated = merge_ads_consent(
                    settings.lake_dir, read_ga4_consent(file)
                )
    except (IngestError, MappingError, ValueError, OSError) as problem:
        raise _fail(str(problem)) from None
    if as_json:
        _emit_json(report.to_dict())
    else:
        out.print(ingest_table(report))


@app.command()
def simulate(
    visitors: Annotated[int, typer.Option(min=1, help="number of visitors")] = 20_000,
    days: Annotated[int, typer.Option(min=1, help="length of the simulated period")] = 90,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 42,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder to write to [default: DATA_DIR/simulated]")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    as_json: JsonOption = False,
) -> None:
    """Write realistic simulated events, contacts and ground truth (deterministic by seed)."""
    from features.simulation import SimulationConfig
    from features.simulation import simulate as run_simulation
    from features.simulation.writer import write_simulation

    settings = _settings()
    if fmt not in ("csv", "parquet"):
        raise _fail(f"--format must be csv or parquet, not {fmt!r}")
    target = out_dir or settings.data_dir / "simulated"
    with err.status(f"simulating {visitors:,} visitors over {days} days"):
        data = run_simulation(SimulationConfig(visitors=visitors, days=days, seed=seed))
        files = write_simulation(data, target, fmt)
    summary = {
        "events": data.events.height,
        "visitors": data.events.get_column("visitor_id").n_unique(),
        "purchasers": data.events.filter(pl.col("event_name") == "purchase")
        .get_column("visitor_id")
        .n_unique(),
        "files": {name: str(path) for name, path in files.items()},
    }
    if as_json:
        _emit_json(summary)
    else:
        for key, value in summary.items():
            out.print(f"[bold]{key}[/]: {value}")
