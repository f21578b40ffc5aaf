"""A run's audience and the consent re-check at export time.

The audience is the run's visitors on one route (``scores.parquet``). Consent is checked
again against the *latest* contacts, for the destination's channel: an ad platform needs ad
consent now, an email tool needs a subscription now, whatever was true at scoring time.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from features.events.schema import AdsConsent, EmailStatus

EMAIL_CHANNEL = "email"
ADS_CHANNEL = "ads"
#: The channel each route contacts through.
CHANNEL_OF_ROUTE = {"email_remarketing": EMAIL_CHANNEL, "ad_retargeting": ADS_CHANNEL}
#: Why a visitor of the audience is not exported (summary keys).
NOT_SUBSCRIBED = "email_not_subscribed_now"
NO_ADS_CONSENT = "ads_consent_not_granted_now"
NO_IDENTIFIER = "no_identifier_accepted"
AUDIENCE_COLUMNS = ("visitor_id", "score", "decile", "expected_value", "route")


def audience_of_run(run_dir: Path, route: str) -> pl.DataFrame:
    """The visitors of a run on ``route``, best score first: ``AUDIENCE_COLUMNS``."""
    if route not in CHANNEL_OF_ROUTE:
        raise ValueError(f"route must be one of {sorted(CHANNEL_OF_ROUTE)}, got {route!r}")
    return (
        pl.scan_parquet(run_dir / "scores.parquet")
        .filter(pl.col("route") == route)
        .select(AUDIENCE_COLUMNS)
        .sort("score", "visitor_id", descending=[True, False])
        .collect()
    )


def consented(channel: str) -> pl.Expr:
    """True where the contact row allows ``channel`` (a missing contact allows nothing)."""
    if channel == EMAIL_CHANNEL:
        return (pl.col("email_status") == EmailStatus.SUBSCRIBED.value).fill_null(False)
    if channel == ADS_CHANNEL:
        return (pl.col("ads_consent") == AdsConsent.GRANTED.value).fill_null(False)
    raise ValueError(f"unknown channel {channel!r}")


def recheck_consent(
    audience: pl.DataFrame, contacts: pl.DataFrame, channel: str
) -> tuple[pl.DataFrame, int]:
    """The audience visitors ``channel`` may reach now, and how many were left out."""
    joined = audience.join(
        contacts.select("visitor_id", "email_status", "ads_consent"),
        on="visitor_id",
        how="left",
        maintain_order="left",
    )
    kept = joined.filter(consented(channel)).select(audience.columns)
    return kept, audience.height - kept.height


def consent_reason(channel: str) -> str:
    return NOT_SUBSCRIBED if channel == EMAIL_CHANNEL else NO_ADS_CONSENT
