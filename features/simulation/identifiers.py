"""Synthetic personal identifiers for simulated contacts, so the demo and the tests exercise
the whole activation path without a single real address or number.

Emails are on the domains RFC 2606 reserves (example.com, .org, .net); phones are in ranges
set aside for fiction: Ofcom's drama numbers (+44 7700 900000-900999, +44 20 7946 0000-0999)
and the North American 555-0100-0199. Everything is a pure function of ``visitor_id``, so
adding identifiers changes nothing else a seed simulates.
"""

from __future__ import annotations

import polars as pl

_DOMAINS = ("example.com", "example.org", "example.net")
_FIRST = ("Alex", "Sam", "Robin", "Kim", "Jo", "Charlie", "Mary Ann", "Jean-Luc")
_LAST = ("Doe", "Roe", "Poe", "Smith", "O'Brien", "Nguyen", "Müller", "García")


def _pick(code: pl.Expr, values: tuple[str, ...]) -> pl.Expr:
    return pl.lit(pl.Series(values)).gather(code % len(values))


def _zfill(code: pl.Expr, width: int) -> pl.Expr:
    return code.cast(pl.String).str.zfill(width)


def synthetic_identifiers(visitor_ids: pl.Series) -> pl.DataFrame:
    """One row per visitor id: ``email, phone, first_name, last_name, country, postal_code,
    ga_client_id, madid`` written as a user would export them (mixed case, spaced phones), so
    the normaliser has work to do. About one visitor in eight has no phone."""
    # A stable code per id (not Python's salted hash): the id's digits, else its length mix.
    code = (
        pl.col("visitor_id").str.replace_all(r"\D", "").str.slice(-9).cast(pl.Int64, strict=False)
    )
    code = code.fill_null(pl.col("visitor_id").str.len_bytes() * 7919)
    uk = code % 2 == 0
    phone = (
        pl.when(code % 8 == 7)
        .then(None)
        .when(uk & (code % 4 == 0))
        .then(pl.format("+44 7700 900{}", (code % 1000).cast(pl.String).str.zfill(3)))
        .when(uk)
        .then(pl.format("+44 20 7946 0{}", (code % 1000).cast(pl.String).str.zfill(3)))
        .otherwise(pl.format("+1 (212) 555-01{}", (code % 100).cast(pl.String).str.zfill(2)))
    )
    local = pl.col("visitor_id").str.replace_all(r"[^A-Za-z0-9]", ".")
    return (
        pl.DataFrame({"visitor_id": visitor_ids})
        .with_columns(code.alias("_code"))
        .select(
            "visitor_id",
            pl.format("{}@{}", local, _pick(pl.col("_code"), _DOMAINS)).alias("email"),
            phone.alias("phone"),
            _pick(pl.col("_code"), _FIRST).alias("first_name"),
            _pick(pl.col("_code") // 8, _LAST).alias("last_name"),
            pl.when(uk).then(pl.lit("GB")).otherwise(pl.lit("US")).alias("country"),
            pl.when(uk).then(pl.lit("SW1A 1AA")).otherwise(pl.lit("10001")).alias("postal_code"),
            pl.format("{}.{}", pl.col("_code"), pl.col("_code") * 31 % 1_000_000_007).alias(
                "ga_client_id"
            ),
            pl.when(pl.col("_code") % 3 == 0)
            .then(
                pl.format(
                    "00000000-0000-4000-8000-{}", pl.col("_code").cast(pl.String).str.zfill(12)
                )
            )
            .alias("madid"),
        )
    )
