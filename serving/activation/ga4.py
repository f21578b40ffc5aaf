"""GA4 Measurement Protocol request bodies, within GA4's documented limits.

One body per visitor, keyed by ``client_id`` (and ``user_id`` when known), setting the user
properties ``propensity_decile``, ``propensity_route`` and ``propensity_score_band`` with
one ``propensity_audience`` event (a request must carry an event). Limits checked here:
at most 25 events and 25 user properties per request, property names at most 24 characters
and values at most 36, no reserved prefix (``google_``, ``ga_``, ``firebase_``), body under
130 kB.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl

from serving.activation.formats import score_band
from serving.activation.settings import ActivationSettings

MAX_EVENTS = 25
MAX_USER_PROPERTIES = 25
MAX_PROPERTY_NAME = 24
MAX_PROPERTY_VALUE = 36
MAX_EVENT_NAME = 40
MAX_BODY_BYTES = 130_000
RESERVED_PREFIXES = ("google_", "ga_", "firebase_")
AUDIENCE_EVENT = "propensity_audience"
USER_PROPERTIES = ("propensity_decile", "propensity_route", "propensity_score_band")


def ga4_rows(audience: pl.DataFrame, settings: ActivationSettings) -> pl.DataFrame:
    """The fields of each visitor's body (see ``body_of``)."""
    return audience.select(
        "ga_client_id",
        "user_id",
        pl.col("decile").alias("propensity_decile"),
        pl.col("route").alias("propensity_route"),
        score_band(settings).alias("propensity_score_band"),
    )


def body_of(row: dict[str, Any]) -> dict[str, Any]:
    """One Measurement Protocol body from a ``ga4_rows`` row."""
    properties = {name: {"value": row[name]} for name in USER_PROPERTIES}
    body: dict[str, Any] = {"client_id": row["ga_client_id"]}
    if row.get("user_id"):
        body["user_id"] = row["user_id"]
    body["user_properties"] = properties
    body["events"] = [
        {
            "name": AUDIENCE_EVENT,
            "params": {"route": row["propensity_route"], "decile": row["propensity_decile"]},
        }
    ]
    return body


def limit_violations(body: dict[str, Any]) -> list[str]:
    """What GA4's validation endpoint would object to in ``body`` (empty: valid)."""
    problems: list[str] = []
    if not body.get("client_id"):
        problems.append("client_id is required")
    events = body.get("events") or []
    if not events or len(events) > MAX_EVENTS:
        problems.append(f"a request carries 1 to {MAX_EVENTS} events, got {len(events)}")
    properties: dict[str, Any] = body.get("user_properties") or {}
    if len(properties) > MAX_USER_PROPERTIES:
        problems.append(f"more than {MAX_USER_PROPERTIES} user properties")
    for name, wrapped in properties.items():
        if len(name) > MAX_PROPERTY_NAME:
            problems.append(f"user property name {name!r} is over {MAX_PROPERTY_NAME} chars")
        if name.startswith(RESERVED_PREFIXES):
            problems.append(f"user property name {name!r} has a reserved prefix")
        if len(str(wrapped.get("value", ""))) > MAX_PROPERTY_VALUE:
            problems.append(f"user property {name!r} value is over {MAX_PROPERTY_VALUE} chars")
    for event in events:
        name = event.get("name", "")
        if not name or len(name) > MAX_EVENT_NAME or name.startswith(RESERVED_PREFIXES):
            problems.append(f"event name {name!r} is empty, too long or reserved")
    if len(orjson.dumps(body)) >= MAX_BODY_BYTES:
        problems.append(f"body is {MAX_BODY_BYTES} bytes or more")
    return problems
