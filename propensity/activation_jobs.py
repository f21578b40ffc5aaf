"""Audience exports as jobs: read the run, the latest contacts and identifiers, write files."""

from __future__ import annotations

import logging
from pathlib import Path

from features.ingest.contacts import read_contacts
from features.ingest.identifiers import read_identifiers
from propensity import jobs
from propensity.settings import Settings
from serving.activation.audience import audience_of_run
from serving.activation.export import (
    DESTINATIONS,
    ExportSummary,
    plan_export,
    write_export,
    write_summary,
)
from serving.campaign.runs import run_dir_of

log = logging.getLogger(__name__)


def export_audience(
    settings: Settings, destination: str, *, run: str | None, route: str, out_dir: Path
) -> ExportSummary:
    """Export run ``run`` (None: the latest) on ``route`` to ``destination`` in ``out_dir``."""
    if destination not in DESTINATIONS:
        raise ValueError(f"--to must be one of {', '.join(DESTINATIONS)}, got {destination!r}")
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
