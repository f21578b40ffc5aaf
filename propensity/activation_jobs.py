"""Audience exports as jobs: read the run, the latest contacts and identifiers, write files."""

from __future__ import annotations

import logging
from pathlib import Path

from features.ingest.contacts import read_contacts
from features.ingest.identifiers import read_identifiers
from propensity import jobs
from propensity.settings import Settings
from serving.activation.audience import CHANNEL_OF_ROUTE, audience_of_run
from serving.activation.export import (
    DESTINATIONS,
    ExportSummary,
    plan_export,
    write_export,
    write_summary,
)
from serving.activation.send import LEDGER_FILE, SendRefused, bodies_of, send_bodies
from serving.campaign.runs import run_dir_of

log = logging.getLogger(__name__)


def export_audience(
    settings: Settings,
    destination: str,
    *,
    run: str | None,
    route: str,
    out_dir: Path,
    send: bool = False,
) -> ExportSummary:
    """Export run ``run`` (None: the latest) on ``route`` to ``destination`` in ``out_dir``;
    with ``send`` (GA4 only), post the bodies too, once each (ledger beside the run)."""
    if destination not in DESTINATIONS:
        raise ValueError(f"--to must be one of {', '.join(DESTINATIONS)}, got {destination!r}")
    if send and destination != "ga4":
        raise ValueError(f"--send delivers GA4 Measurement Protocol bodies only, not {destination}")
    run_dir = run_dir_of(jobs.serving_paths(settings).scoring_dir, run)
    plan = plan_export(
        DESTINATIONS[destination],
        audience_of_run(run_dir, route),
        contacts=read_contacts(settings.lake_dir),
        identifiers=read_identifiers(settings.lake_dir),
        run_id=run_dir.name,
        route=route,
        settings=settings.activation,
    )
    files = write_export(plan, out_dir, settings.activation)
    plan.summary.files = [str(p) for p in files]
    if send:
        try:
            delivered = send_bodies(bodies_of(files[0]), run_dir / LEDGER_FILE, settings.activation)
        except SendRefused as problem:
            raise ValueError(str(problem)) from None
        plan.summary.delivery = delivered.to_dict()
    write_summary(plan.summary, out_dir)
    # Counts only: identifiers never reach a log.
    log.info(
        "exported %d of %d visitors to %s (left out: %s)",
        plan.summary.exported,
        plan.summary.audience,
        destination,
        plan.summary.left_out,
    )
    return plan.summary


def routes_of(destination: str) -> list[str]:
    """The routes whose channel ``destination`` reaches (every route for the plain CSV)."""
    channel = DESTINATIONS[destination].channel
    return [route for route, c in CHANNEL_OF_ROUTE.items() if channel in (None, c)]


def parse_destinations(spec: str) -> list[str]:
    """``customer-match,ga4`` -> the destinations, each checked, in order, once."""
    names = list(dict.fromkeys(part.strip() for part in spec.split(",") if part.strip()))
    unknown = [name for name in names if name not in DESTINATIONS]
    if not names or unknown:
        raise ValueError(
            f"--export takes a comma-separated list of {', '.join(DESTINATIONS)}, got {spec!r}"
        )
    return names


def export_scoring_run(
    settings: Settings, destinations: list[str], run_id: str
) -> list[ExportSummary]:
    """The exports of ``propensity score --export``: each destination on each route it
    reaches, into ``outputs/exports/RUN_ID/DESTINATION_ROUTE``."""
    base = settings.outputs_dir / "exports" / run_id
    return [
        export_audience(settings, name, run=run_id, route=route, out_dir=base / f"{name}_{route}")
        for name in destinations
        for route in routes_of(name)
    ]
