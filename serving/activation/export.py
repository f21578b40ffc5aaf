"""``propensity export``: a run's audience, consent re-checked, in a destination's format.

``plan_export`` is pure (frames in, rows and a summary out); ``write_export`` is the edge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
import polars as pl

from features.ingest.identifiers import hash_identifiers, is_hashed
from serving.activation.audience import (
    ADS_CHANNEL,
    CHANNEL_OF_ROUTE,
    EMAIL_CHANNEL,
    NO_IDENTIFIER,
    consent_reason,
    recheck_consent,
)
from serving.activation.formats import (
    Destination,
    customer_match_rows,
    klaviyo_rows,
    mailchimp_rows,
    meta_rows,
    plain_rows,
)
from serving.activation.ga4 import body_of, ga4_rows, limit_violations
from serving.activation.settings import ActivationSettings

DESTINATIONS: dict[str, Destination] = {
    d.name: d
    for d in (
        Destination(
            "customer-match",
            ADS_CHANNEL,
            needs_raw=False,
            identifier_columns=("Email", "Phone", "First Name"),
            rows=customer_match_rows,
        ),
        Destination(
            "meta",
            ADS_CHANNEL,
            needs_raw=False,
            identifier_columns=("EMAIL", "PHONE", "MADID", "EXTERN_ID"),
            rows=meta_rows,
        ),
        Destination(
            "ga4", ADS_CHANNEL, needs_raw=False, identifier_columns=("ga_client_id",), rows=ga4_rows
        ),
        Destination(
            "klaviyo",
            EMAIL_CHANNEL,
            needs_raw=True,
            identifier_columns=("Email",),
            rows=klaviyo_rows,
        ),
        Destination(
            "mailchimp",
            EMAIL_CHANNEL,
            needs_raw=True,
            identifier_columns=("Email Address",),
            rows=mailchimp_rows,
        ),
        Destination(
            "csv", None, needs_raw=False, identifier_columns=("visitor_id",), rows=plain_rows
        ),
    )
}


class ExportRefused(RuntimeError):
    """The export cannot be made as asked (e.g. it needs raw emails the store does not keep)."""


@dataclass
class ExportSummary:
    destination: str
    route: str
    run_id: str
    audience: int
    exported: int
    left_out: dict[str, int]
    files: list[str] = field(default_factory=list)
    #: ``--send`` only: sent, already_sent, refused, gave_up
    delivery: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ExportPlan:
    destination: Destination
    rows: pl.DataFrame  # the destination's columns, one row per exported visitor
    visitor_ids: pl.Series  # aligned with rows; never written to ad platforms' files
    summary: ExportSummary


def _identifiers_for(destination: Destination, identifiers: pl.DataFrame) -> pl.DataFrame:
    if destination.needs_raw:
        if is_hashed(identifiers):
            raise ExportRefused(
                f"{destination.name} needs raw email addresses, but the contacts store keeps "
                "SHA-256 hashes only (contacts.store_raw_identifiers=false); nothing exported"
            )
        return identifiers
    return identifiers if is_hashed(identifiers) else hash_identifiers(identifiers)


def plan_export(
    destination: Destination,
    audience: pl.DataFrame,
    *,
    contacts: pl.DataFrame,
    identifiers: pl.DataFrame,
    run_id: str,
    route: str,
    settings: ActivationSettings,
) -> ExportPlan:
    """Re-check consent for the destination's channel, join identifiers, map to rows, and
    leave out (counting) visitors without an identifier the destination accepts."""
    channel = destination.channel or CHANNEL_OF_ROUTE[route]
    allowed, refused = recheck_consent(audience, contacts, channel)
    joined = allowed.join(
        _identifiers_for(destination, identifiers),
        on="visitor_id",
        how="left",
        maintain_order="left",
    )
    rows = destination.rows(joined, settings)
    usable = pl.any_horizontal(pl.col(c).is_not_null() for c in destination.identifier_columns)
    mask = rows.select(usable.alias("_usable")).to_series()
    kept = rows.filter(mask)
    summary = ExportSummary(
        destination=destination.name,
        route=route,
        run_id=run_id,
        audience=audience.height,
        exported=kept.height,
        left_out={consent_reason(channel): refused, NO_IDENTIFIER: rows.height - kept.height},
    )
    return ExportPlan(destination, kept, joined.get_column("visitor_id").filter(mask), summary)


def write_export(plan: ExportPlan, out_dir: Path, settings: ActivationSettings) -> list[Path]:
    """The destination's upload files in ``out_dir`` (UTF-8, header row)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = plan.destination.name
    if name == "ga4":
        path = out_dir / "ga4_measurement_protocol.jsonl"
        with path.open("wb") as out:
            for row in plan.rows.iter_rows(named=True):
                body = body_of(row)
                problems = limit_violations(body)
                if problems:  # the mapping keeps within limits; a breach is a bug here
                    raise ExportRefused(f"GA4 body breaks its limits: {problems}")
                out.write(orjson.dumps(body) + b"\n")
        return [path]
    if name == "meta":
        size = settings.meta_batch_rows
        paths = []
        for index, start in enumerate(range(0, max(plan.rows.height, 1), size), start=1):
            path = out_dir / f"meta_custom_audience_{index:04d}.csv"
            plan.rows.slice(start, size).write_csv(path)
            paths.append(path)
        return paths
    path = out_dir / f"{name.replace('-', '_')}.csv"
    plan.rows.write_csv(path)
    return [path]


def write_summary(summary: ExportSummary, out_dir: Path) -> Path:
    path = out_dir / "export_summary.json"
    path.write_bytes(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2))
    return path
