"""The contactability table: may we email this visitor, may we show them ads.

Stored apart from events at ``<lake>/contacts/contacts.parquet``, one row per visitor, the
latest ``updated_at`` winning. Routing reads it; feature code never joins it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from features.events.schema import ADS_CONSENTS, CONTACT_COLUMNS, CONTACT_SCHEMA, EMAIL_STATUSES
from features.ingest.batch import LINE_COLUMN, QUARANTINE_SCHEMA, IngestError
from features.ingest.identifiers import update_identifiers
from features.ingest.mapping import TimeSpec
from features.ingest.pii import PII_IN_IDENTIFIER, holds_email
from features.ingest.pipeline import IngestReport, QuarantineWriter
from features.ingest.validate import parse_event_time

CONTACTS_FILE = Path("contacts") / "contacts.parquet"


@dataclass(frozen=True)
class ValidatedContacts:
    accepted: pl.DataFrame  # CONTACT_SCHEMA
    quarantined: pl.DataFrame  # QUARANTINE_SCHEMA


def validate_contacts(records: pl.DataFrame) -> ValidatedContacts:
    """Check a frame with the contact columns (any dtypes) plus ``LINE_COLUMN``."""
    missing = [c for c in CONTACT_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"contacts lack columns {missing}; found {records.columns}")
    text = {c: pl.col(c).cast(pl.String).str.strip_chars() for c in CONTACT_COLUMNS}
    staged = records.with_columns(
        text["visitor_id"].alias("visitor_id"),
        text["email_status"].str.to_lowercase().alias("email_status"),
        text["ads_consent"].str.to_lowercase().alias("ads_consent"),
        parse_event_time(pl.col("updated_at"), records.schema["updated_at"], TimeSpec()).alias(
            "_updated"
        ),
    )
    reason = (
        pl.when(pl.col("visitor_id").is_null() | (pl.col("visitor_id") == ""))
        .then(pl.lit("missing_visitor"))
        .when(holds_email(pl.col("visitor_id")).fill_null(False))
        .then(pl.lit(PII_IN_IDENTIFIER))
        .when(~pl.col("email_status").is_in(EMAIL_STATUSES).fill_null(False))
        .then(pl.lit("unknown_email_status"))
        .when(~pl.col("ads_consent").is_in(ADS_CONSENTS).fill_null(False))
        .then(pl.lit("unknown_ads_consent"))
        .when(pl.col("_updated").is_null())
        .then(pl.lit("bad_timestamp"))
    )
    staged = staged.with_columns(reason.alias("_reason"))
    ok = pl.col("_reason").is_null()
    accepted = staged.filter(ok).select(
        "visitor_id", "email_status", "ads_consent", pl.col("_updated").alias("updated_at")
    )
    quarantined = staged.filter(~ok).select(
        pl.col(LINE_COLUMN).cast(pl.Int64).alias("line"),
        pl.col("_reason").alias("reason"),
        pl.lit(None, dtype=pl.String).alias("detail"),
        pl.struct(CONTACT_COLUMNS).struct.json_encode().alias("raw"),
    )
    return ValidatedContacts(
        accepted.cast(CONTACT_SCHEMA),  # type: ignore[arg-type]
        quarantined.cast(QUARANTINE_SCHEMA),  # type: ignore[arg-type]
    )


def merge_contacts(current: pl.DataFrame, updates: pl.DataFrame) -> pl.DataFrame:
    """One row per visitor: the most recent ``updated_at`` wins (ties: the update wins)."""
    return (
        pl.concat([current, updates])
        .with_row_index("_order")
        .sort("updated_at", "_order")
        .unique("visitor_id", keep="last", maintain_order=False)
        .drop("_order")
        .sort("visitor_id")
    )


def read_contacts(lake_dir: Path) -> pl.DataFrame:
    path = lake_dir / CONTACTS_FILE
    if not path.exists():
        return pl.DataFrame(schema=CONTACT_SCHEMA)
    return pl.read_parquet(path)


def write_contacts(lake_dir: Path, contacts: pl.DataFrame) -> Path:
    """Replace the contacts table atomically (write then rename)."""
    path = lake_dir / CONTACTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    contacts.select(CONTACT_COLUMNS).write_parquet(tmp)
    tmp.replace(path)
    return path


def read_contact_records(path: Path) -> pl.DataFrame:
    """A contacts CSV or Parquet file as text columns plus ``LINE_COLUMN``."""
    if path.suffix == ".parquet":
        records = pl.read_parquet(path)
        first_line = 1
    else:
        records = pl.read_csv(path, infer_schema=False)
        first_line = 2
    missing = [c for c in CONTACT_COLUMNS if c not in records.columns]
    if missing:
        raise IngestError(
            f"{path}: expected contact columns {list(CONTACT_COLUMNS)}; "
            f"found {records.columns}; missing {missing}"
        )
    return records.with_row_index(LINE_COLUMN, offset=first_line).with_columns(
        pl.col(LINE_COLUMN).cast(pl.Int64)
    )


def ingest_contacts_file(
    path: Path,
    *,
    lake_dir: Path,
    quarantine_dir: Path,
    ingest_id: str,
    store_raw_identifiers: bool = True,
) -> IngestReport:
    """Merge a contacts file into the lake's contacts table; same accounting as events.
    Identifier columns (email, phone, ...) go to the identifiers store of accepted rows only,
    never to the contacts table or the quarantine."""
    records = read_contact_records(path)
    validated = validate_contacts(records)
    quarantined_lines = validated.quarantined.get_column("line")
    update_identifiers(
        lake_dir,
        records.filter(~pl.col(LINE_COLUMN).is_in(quarantined_lines.implode())),
        store_raw_identifiers=store_raw_identifiers,
    )
    current = read_contacts(lake_dir)
    unchanged = validated.accepted.join(current, on=list(CONTACT_COLUMNS), how="semi")
    quarantine = QuarantineWriter(quarantine_dir, ingest_id, path)
    quarantine.write(validated.quarantined)
    write_contacts(lake_dir, merge_contacts(current, validated.accepted))
    report = IngestReport(
        file=str(path),
        source="contacts",
        ingest_id=ingest_id,
        rows_read=records.height,
        accepted=validated.accepted.height - unchanged.height,
        duplicates=unchanged.height,
        quarantined=dict(quarantine.reasons.most_common()),
        visitors=validated.accepted.get_column("visitor_id").n_unique(),
        quarantine_file=str(quarantine.path) if quarantine.reasons else None,
    )
    report.check_balance()
    return report


def merge_ads_consent(lake_dir: Path, consent: pl.DataFrame) -> int:
    """Merge consent read from an event export (e.g. GA4 ``privacy_info``) into the lake.

    Such exports know about ad consent only, so a visitor's known email status is kept
    rather than overwritten with "unknown". Returns the number of visitors updated.
    """
    current = read_contacts(lake_dir)
    known_email = current.select("visitor_id", pl.col("email_status").alias("_known"))
    updates = (
        consent.join(known_email, on="visitor_id", how="left")
        .with_columns(pl.coalesce("_known", "email_status").alias("email_status"))
        .select(CONTACT_COLUMNS)
    )
    changed = updates.join(current, on=list(CONTACT_COLUMNS), how="anti")
    if not changed.is_empty():
        write_contacts(lake_dir, merge_contacts(current, changed))
    return changed.height
