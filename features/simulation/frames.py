"""Turn simulated codes into the canonical event and contact tables."""

from __future__ import annotations

import numpy as np
import polars as pl

from features.events.schema import (
    CONTACT_SCHEMA,
    EVENT_SCHEMA,
    TIME_DTYPE,
    AdsConsent,
    EmailStatus,
)
from features.simulation.catalog import Catalog
from features.simulation.config import SimulationConfig
from features.simulation.events import EVENT_CODES, NONE, PURCHASE, REFUND, EventRows
from features.simulation.seasonality import IntArray
from features.simulation.visitors import Visitors, time_us

SOURCE = "simulator"
#: Email status shares (subscribed, unsubscribed, pending, unknown): logged-in vs anonymous.
EMAIL_SHARES_LOGGED_IN = (0.40, 0.10, 0.05, 0.45)
EMAIL_SHARES_ANONYMOUS = (0.03, 0.01, 0.01, 0.95)
EMAIL_ORDER = (
    EmailStatus.SUBSCRIBED,
    EmailStatus.UNSUBSCRIBED,
    EmailStatus.PENDING,
    EmailStatus.UNKNOWN,
)
#: Ads consent shares (granted, denied, unknown).
ADS_SHARES = (0.55, 0.25, 0.20)
ADS_ORDER = (AdsConsent.GRANTED, AdsConsent.DENIED, AdsConsent.UNKNOWN)


def _prefixed_ids(prefix: str, n: int, width: int) -> pl.Series:
    """``prefix`` + zero-padded number, index = number."""
    digits = pl.int_range(0, n).cast(pl.String).str.zfill(max(width, len(str(max(n - 1, 0)))))
    return pl.select(pl.format(f"{prefix}{{}}", digits)).to_series()


def _index(column: str) -> pl.Expr:
    """A code column as a gather index: ``NONE`` becomes null, so the gather yields null."""
    return pl.when(pl.col(column) != NONE).then(pl.col(column))


def _codes(parts: list[EventRows]) -> pl.LazyFrame:
    frames = [
        pl.DataFrame({name: getattr(part, name) for name in EventRows.__dataclass_fields__})
        for part in parts
    ]
    return pl.concat(frames).lazy()


def _event_columns(
    parts: list[EventRows], catalog: Catalog, visitor_ids: pl.Series, visitors: Visitors
) -> dict[str, pl.Expr]:
    """Canonical column -> expression over the code columns of ``EventRows``."""
    users = _prefixed_ids("u", visitor_ids.len(), 7)
    users = pl.select(pl.when(pl.Series(visitors.logged_in)).then(users)).to_series()
    orders = max(int(part.transaction.max(initial=NONE)) for part in parts) + 1
    sessions = max(int(part.session.max(initial=NONE)) for part in parts) + 1
    item = _index("item")
    price = pl.lit(pl.Series(catalog.price)).gather(item)
    is_order = pl.col("event").is_in([PURCHASE, REFUND])
    return {
        "visitor_id": pl.lit(visitor_ids).gather(pl.col("visitor")),
        "event_time": pl.col("time").cast(TIME_DTYPE),
        "event_name": pl.lit(pl.Series([e.value for e in EVENT_CODES])).gather(pl.col("event")),
        "item_id": pl.lit(catalog.item_ids).gather(item),
        "item_category": pl.lit(catalog.category_names.gather(catalog.category)).gather(item),
        "price": price,
        "quantity": _index("quantity"),
        "revenue": pl.when(is_order).then((price * pl.col("quantity")).round(2)),
        "transaction_id": pl.lit(_prefixed_ids("t", orders, 7)).gather(_index("transaction")),
        "session_id": pl.lit(_prefixed_ids("s", sessions, 8)).gather(_index("session")),
        "user_id": pl.lit(users).gather(pl.col("visitor")),
        "source": pl.lit(SOURCE),
    }


def events_frame(
    parts: list[EventRows],
    catalog: Catalog,
    visitor_ids: pl.Series,
    visitors: Visitors,
    config: SimulationConfig,
) -> pl.DataFrame:
    """The canonical events table: rows within the period, sorted by ``event_time``.

    The sort is stable, so the rows of one multi-item event keep their cart-line order.
    """
    start_us, end_us = time_us(config)
    columns = _event_columns(parts, catalog, visitor_ids, visitors)
    return (
        _codes(parts)
        .filter((pl.col("time") >= start_us) & (pl.col("time") < end_us))
        .sort("time", maintain_order=True)
        .select(columns[name].cast(dtype).alias(name) for name, dtype in EVENT_SCHEMA.items())
        .collect()
    )


def _pick(rng: np.random.Generator, shares: tuple[float, ...], n: int) -> IntArray:
    return np.searchsorted(np.cumsum(shares), rng.random(n) * sum(shares), side="right")


def contacts_frame(
    config: SimulationConfig,
    visitors: Visitors,
    visitor_ids: pl.Series,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """One row per visitor; logged-in visitors are far more often subscribed."""
    n = visitor_ids.len()
    email = np.where(
        visitors.logged_in,
        _pick(rng, EMAIL_SHARES_LOGGED_IN, n),
        _pick(rng, EMAIL_SHARES_ANONYMOUS, n),
    )
    _, end_us = time_us(config)
    # Last change somewhere in the visitor's observed life.
    last_seen = np.maximum(np.minimum(visitors.churn, end_us), visitors.alive_from + 1)
    updated = rng.integers(visitors.alive_from, last_seen)
    frame = pl.DataFrame(
        {
            "visitor_id": visitor_ids,
            "email_status": pl.Series([e.value for e in EMAIL_ORDER]).gather(email),
            "ads_consent": pl.Series([a.value for a in ADS_ORDER]).gather(
                _pick(rng, ADS_SHARES, n)
            ),
            "updated_at": pl.Series(updated, dtype=pl.Int64).cast(TIME_DTYPE),
        }
    )
    return frame.select(pl.col(name).cast(dtype) for name, dtype in CONTACT_SCHEMA.items())
