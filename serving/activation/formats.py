"""Each destination's upload rows: a small pure mapping from the audience joined with its
identifiers. The rules and their sources are in docs/activation.md.

Input of every mapping: ``AUDIENCE_COLUMNS`` plus the identifiers store's columns (hashed
form, ``HASHED_SCHEMA``, for the ad platforms; normalised raw form, ``RAW_SCHEMA``, for the
email tools). Output: the destination's columns, one row per input row in the same order;
a row whose ``identifier_columns`` are all null is left out and counted, never sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from features.ingest.identifiers import sha256
from serving.activation.settings import ActivationSettings

Mapping = Callable[[pl.DataFrame, ActivationSettings], pl.DataFrame]


@dataclass(frozen=True)
class Destination:
    name: str
    #: The channel whose consent an exported visitor needs (None: the route's own).
    channel: str | None
    #: True: needs raw emails, so a hashed-only contacts store cannot feed it.
    needs_raw: bool
    identifier_columns: tuple[str, ...]
    rows: Mapping


def score_band(settings: ActivationSettings) -> pl.Expr:
    decile = pl.col("decile")
    return (
        pl.when(decile <= settings.high_band_max_decile)
        .then(pl.lit("high"))
        .when(decile <= settings.medium_band_max_decile)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )


def customer_match_rows(audience: pl.DataFrame, settings: ActivationSettings) -> pl.DataFrame:
    """Google Ads Customer Match CSV: hashed Email, Phone (E.164), First and Last Name;
    Country and Zip in clear. An address is sent only whole (all four parts)."""
    address = pl.all_horizontal(
        pl.col(c).is_not_null()
        for c in ("first_name_sha256", "last_name_sha256", "country", "postal_code")
    )

    def part(column: str) -> pl.Expr:
        return pl.when(address).then(pl.col(column))

    return audience.select(
        pl.col("email_sha256").alias("Email"),
        pl.col("phone_sha256").alias("Phone"),
        part("first_name_sha256").alias("First Name"),
        part("last_name_sha256").alias("Last Name"),
        part("country").alias("Country"),
        part("postal_code").alias("Zip"),
    )


def meta_rows(audience: pl.DataFrame, settings: ActivationSettings) -> pl.DataFrame:
    """Meta Custom Audiences customer file, normalised as Meta's business SDK does: all
    SHA-256 except MADID and EXTERN_ID."""
    zip_code = (
        pl.col("postal_code")
        .str.to_lowercase()
        .str.split("-")
        .list.first()
        .str.replace_all(" ", "")
    )
    return audience.select(
        pl.col("email_sha256").alias("EMAIL"),
        pl.col("phone_digits_sha256").alias("PHONE"),
        pl.col("fn_sha256").alias("FN"),
        pl.col("ln_sha256").alias("LN"),
        sha256(pl.col("country").str.to_lowercase()).alias("COUNTRY"),
        sha256(pl.when(zip_code != "").then(zip_code)).alias("ZIP"),
        pl.col("madid").alias("MADID"),
        pl.col("user_id").alias("EXTERN_ID"),
    )


def _with_propensity(audience: pl.DataFrame, settings: ActivationSettings) -> list[pl.Expr]:
    return [
        pl.col("decile").alias("propensity_decile"),
        score_band(settings).alias("propensity_score_band"),
        pl.col("route").alias("propensity_route"),
    ]


def klaviyo_rows(audience: pl.DataFrame, settings: ActivationSettings) -> pl.DataFrame:
    """Klaviyo list import: ``Email`` first, Klaviyo property names, custom properties."""
    return audience.select(
        pl.col("email").alias("Email"),
        pl.col("phone").alias("Phone Number"),
        pl.col("first_name").str.to_titlecase().alias("First Name"),
        pl.col("last_name").str.to_titlecase().alias("Last Name"),
        pl.col("country").alias("Country"),
        pl.col("postal_code").alias("Zip Code"),
        *_with_propensity(audience, settings),
    )


def mailchimp_rows(audience: pl.DataFrame, settings: ActivationSettings) -> pl.DataFrame:
    """Mailchimp audience import: ``Email Address`` required, then the merge fields."""
    return audience.select(
        pl.col("email").alias("Email Address"),
        pl.col("first_name").str.to_titlecase().alias("First Name"),
        pl.col("last_name").str.to_titlecase().alias("Last Name"),
        pl.col("phone").alias("Phone Number"),
        pl.format("propensity-{}", score_band(settings)).alias("Tags"),
    )


def plain_rows(audience: pl.DataFrame, settings: ActivationSettings) -> pl.DataFrame:
    """The audience with pseudonymous ids only (no personal identifier)."""
    return audience.select(
        "visitor_id",
        "user_id",
        "score",
        "decile",
        score_band(settings).alias("score_band"),
        "expected_value",
        "route",
    )
