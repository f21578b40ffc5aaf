"""Personal identifiers of contacts: normalised once, stored apart, hashed for platforms.

Identifiers (email, phone, names, country, postal code, and the platform ids GA4 and the ad
platforms use) live only in ``<lake>/contacts/identifiers.parquet``: never in the event
lake, features, model inputs, MLflow or logs. The file and its folder are readable by
their owner only. With ``store_raw_identifiers=False`` the store keeps SHA-256 hashes of
email, phone and names (in each platform's normalised form) and no raw value of them.

Grain: one row per ``visitor_id``; the latest contacts file that names a visitor wins.
All transforms are Polars expressions, so hashing a million rows is one vectorised pass
(polars-hash), not a Python loop.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import polars_hash  # noqa: F401  # registers the .chash namespace

IDENTIFIERS_FILE = Path("contacts") / "identifiers.parquet"
# Identifiers a contacts file may carry next to its contactability columns.
IDENTIFIER_FIELDS: tuple[str, ...] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "postal_code",
    "ga_client_id",
    "user_id",
    "madid",
)
RAW_SCHEMA: dict[str, pl.DataType] = {c: pl.String() for c in ("visitor_id", *IDENTIFIER_FIELDS)}
# What the hashed store keeps: hashes in each platform's form, plus the fields platforms
# take unhashed (Customer Match's Country and Zip; GA4's client and user ids; MADID).
HASHED_SCHEMA: dict[str, pl.DataType] = {
    "visitor_id": pl.String(),
    "email_sha256": pl.String(),
    "phone_sha256": pl.String(),  # E.164 with "+" (Google)
    "phone_digits_sha256": pl.String(),  # digits with country code, no "+" (Meta)
    "first_name_sha256": pl.String(),  # lower-cased, spaces trimmed (Google)
    "last_name_sha256": pl.String(),
    "fn_sha256": pl.String(),  # letters only, lower-cased (Meta)
    "ln_sha256": pl.String(),
    "country": pl.String(),
    "postal_code": pl.String(),
    "ga_client_id": pl.String(),
    "user_id": pl.String(),
    "madid": pl.String(),
}
# The hashed store's columns that each identifier field becomes.
HASHED_FROM: dict[str, tuple[str, ...]] = {
    "email": ("email_sha256",),
    "phone": ("phone_sha256", "phone_digits_sha256"),
    "first_name": ("first_name_sha256", "fn_sha256"),
    "last_name": ("last_name_sha256", "ln_sha256"),
}
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_E164 = r"^\+[1-9][0-9]{6,14}$"
_OWNER_ONLY_FILE = 0o600
_OWNER_ONLY_DIR = 0o700


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr == "").then(None).otherwise(expr)


def normalised_email(column: str = "email") -> pl.Expr:
    """Trimmed and lower-cased; anything that is not one address becomes null."""
    email = pl.col(column).str.strip_chars().str.to_lowercase()
    return pl.when(email.str.contains(_EMAIL)).then(email)


def normalised_phone(column: str = "phone") -> pl.Expr:
    """E.164 (``+`` then 7 to 15 digits); ``00`` becomes ``+``; a number without its country
    code cannot be placed and becomes null."""
    phone = pl.col(column).str.replace_all(r"[\s\-().]", "").str.replace(r"^00", "+")
    return pl.when(phone.str.contains(_E164)).then(phone)


def normalised_name(column: str) -> pl.Expr:
    """Lower-cased, spaces trimmed and collapsed."""
    name = pl.col(column).str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")
    return _blank_to_null(name)


def normalised_country(column: str = "country") -> pl.Expr:
    """ISO 3166-1 alpha-2, upper-case; anything else becomes null."""
    country = pl.col(column).str.strip_chars().str.to_uppercase()
    return pl.when(country.str.contains(r"^[A-Z]{2}$")).then(country)


def normalised_text(column: str) -> pl.Expr:
    return _blank_to_null(pl.col(column).str.strip_chars())


def normalise_identifiers(records: pl.DataFrame) -> pl.DataFrame:
    """``RAW_SCHEMA`` from any frame with ``visitor_id`` and some of ``IDENTIFIER_FIELDS``
    (missing fields are null). Values that normalise to nothing are null."""
    present = records.with_columns(
        pl.lit(None, dtype=pl.String).alias(f) for f in IDENTIFIER_FIELDS if f not in records
    ).with_columns(pl.col(c).cast(pl.String) for c in RAW_SCHEMA)
    return present.select(
        pl.col("visitor_id").str.strip_chars(),
        normalised_email().alias("email"),
        normalised_phone().alias("phone"),
        normalised_name("first_name").alias("first_name"),
        normalised_name("last_name").alias("last_name"),
        normalised_country().alias("country"),
        normalised_text("postal_code").alias("postal_code"),
        normalised_text("ga_client_id").alias("ga_client_id"),
        normalised_text("user_id").alias("user_id"),
        normalised_text("madid").str.to_lowercase().alias("madid"),
    )


def sha256(expr: pl.Expr) -> pl.Expr:
    """Hex SHA-256 of a UTF-8 string expression; null stays null."""
    return expr.chash.sha2_256()  # type: ignore[attr-defined]  # polars-hash namespace


def meta_name(column: str) -> pl.Expr:
    """Meta's rule for names: letters only (any script), lower-cased."""
    return _blank_to_null(pl.col(column).str.to_lowercase().str.replace_all(r"[^\p{L}]", ""))


def hash_identifiers(raw: pl.DataFrame) -> pl.DataFrame:
    """``HASHED_SCHEMA`` from normalised ``RAW_SCHEMA`` identifiers."""
    return raw.select(
        "visitor_id",
        sha256(pl.col("email")).alias("email_sha256"),
        sha256(pl.col("phone")).alias("phone_sha256"),
        sha256(pl.col("phone").str.strip_prefix("+")).alias("phone_digits_sha256"),
        sha256(pl.col("first_name")).alias("first_name_sha256"),
        sha256(pl.col("last_name")).alias("last_name_sha256"),
        sha256(meta_name("first_name")).alias("fn_sha256"),
        sha256(meta_name("last_name")).alias("ln_sha256"),
        "country",
        "postal_code",
        "ga_client_id",
        "user_id",
        "madid",
    )


def stored_form(raw: pl.DataFrame, *, store_raw_identifiers: bool) -> pl.DataFrame:
    return raw if store_raw_identifiers else hash_identifiers(raw)


def read_identifiers(lake_dir: Path) -> pl.DataFrame:
    """The stored identifiers (``RAW_SCHEMA`` or ``HASHED_SCHEMA``); empty raw if none."""
    path = lake_dir / IDENTIFIERS_FILE
    if not path.exists():
        return pl.DataFrame(schema=RAW_SCHEMA)
    return pl.read_parquet(path)


def is_hashed(identifiers: pl.DataFrame) -> bool:
    return "email_sha256" in identifiers.columns


def merge_identifiers(current: pl.DataFrame, updates: pl.DataFrame) -> pl.DataFrame:
    """One row per visitor, the update replacing the whole row (a cleared field is cleared).
    A store switched to hashed mode hashes what it held before."""
    if is_hashed(updates) and not is_hashed(current):
        current = hash_identifiers(current)
    elif is_hashed(current) and not is_hashed(updates):
        updates = hash_identifiers(updates)
    return (
        pl.concat([current, updates.select(current.columns)])
        .unique("visitor_id", keep="last", maintain_order=True)
        .sort("visitor_id")
    )


def write_identifiers(lake_dir: Path, identifiers: pl.DataFrame) -> Path:
    """Replace the store atomically; the folder and the file are the owner's only."""
    path = lake_dir / IDENTIFIERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(_OWNER_ONLY_DIR)
    tmp = path.with_suffix(".parquet.tmp")
    # Created owner-only, so the identifiers are never readable by others, even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _OWNER_ONLY_FILE)
    with os.fdopen(fd, "wb") as out:
        identifiers.write_parquet(out)
    tmp.chmod(_OWNER_ONLY_FILE)
    tmp.replace(path)
    return path


def update_identifiers(
    lake_dir: Path, records: pl.DataFrame, *, store_raw_identifiers: bool
) -> int:
    """Merge the identifiers of a contacts file (last row per visitor wins) into the store.
    A field the file has no column for keeps its stored value; an empty field clears it.
    Returns the number of visitors written; a file without identifier columns writes none."""
    absent = [f for f in IDENTIFIER_FIELDS if f not in records.columns]
    if len(absent) == len(IDENTIFIER_FIELDS):
        return 0
    raw = (
        normalise_identifiers(records)
        .filter(pl.col("visitor_id").is_not_null() & (pl.col("visitor_id") != ""))
        .unique("visitor_id", keep="last", maintain_order=True)
    )
    current = read_identifiers(lake_dir)
    hashed = not store_raw_identifiers or is_hashed(current)
    updates = stored_form(raw, store_raw_identifiers=not hashed)
    if hashed and not is_hashed(current):
        current = hash_identifiers(current)
    kept = [c for f in absent for c in (HASHED_FROM.get(f, (f,)) if hashed else (f,))]
    if kept:
        known = current.select("visitor_id", *kept)
        updates = (
            updates.drop(kept)
            .join(known, on="visitor_id", how="left", maintain_order="left")
            .select(current.columns)
        )
    write_identifiers(lake_dir, merge_identifiers(current, updates))
    return raw.height
