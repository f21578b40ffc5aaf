"""The feature list: every per-visitor feature, declared once, with a one-line description.

Time semantics: a feature *as of* T uses only events with ``T - lookback <= event_time < T``
(``FeatureConfig.lookback``, 30 days by default), or every event before T when the lookback
is ``None`` (full history, ``"all"`` in settings and in a model's spec). Activity buckets are
fixed offsets before T: ``1d`` = [T-1d, T), ``1_7d`` = [T-7d, T-1d), ``7_14d`` = [T-14d,
T-7d), ``14_30d`` = [T-30d, T-14d), whatever the lookback; a bucket reaching past the
lookback only sees the part inside it. Lookback-wide features (counts, tenure, orders,
revenue, shares) read the whole lookback: with full history, the visitor's whole past.

Counts are of event *rows* (the canonical grain is one row per (event, item)).
Missing values: ``days_since_*`` and the means and ratios below are **null** (NaN in the
online path) when there is nothing to measure, e.g. ``days_since_last_purchase`` for a
visitor without a purchase in the lookback. Tree models (LightGBM) route missing values
natively; a linear model needs an explicit imputation. Counts and sums are never null.

Hour, weekday and active-day features use UTC shifted by ``FeatureConfig.local_time_offset``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    field_validator,
)

from features.events.schema import EventName
from features.spec import Aggregate, Derived, Feature, Range, RowFilter

MICROS_PER_SECOND = 1_000_000
MICROS_PER_MINUTE = 60 * MICROS_PER_SECOND
MICROS_PER_HOUR = 60 * MICROS_PER_MINUTE
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
#: How settings, a model's spec and run params spell an unbounded (full-history) lookback.
FULL_HISTORY = "all"


def full_history_as_none(value: Any) -> Any:
    """``"all"`` (any case) as ``None``, the unbounded lookback; anything else unchanged."""
    if isinstance(value, str) and value.strip().lower() == FULL_HISTORY:
        return None
    return value


def spell_full_history(lookback: timedelta | None, default: SerializerFunctionWrapHandler) -> Any:
    """A lookback as JSON: ``"all"`` for full history (plainer than null in a spec or a run
    param, and it reads back the same), else the ISO 8601 duration."""
    return FULL_HISTORY if lookback is None else default(lookback)


class FeatureConfig(BaseModel):
    """How features are computed; part of a feature set's identity (log it with a model)."""

    model_config = ConfigDict(frozen=True)

    lookback: timedelta | None = Field(
        timedelta(days=30),
        gt=timedelta(0),
        description='event window before T; None ("all"): every event before T',
    )
    session_timeout: timedelta = Field(
        timedelta(minutes=30), gt=timedelta(0), description="inactivity that ends a session"
    )
    local_time_offset: timedelta = Field(
        timedelta(0), description="shop's local time minus UTC, for hour/weekday/day features"
    )

    _full_history = field_validator("lookback", mode="before")(full_history_as_none)
    _spell_full_history = field_serializer("lookback", mode="wrap", when_used="json")(
        spell_full_history
    )

    def window_start(self, as_of: datetime) -> datetime | None:
        """The earliest event time the features as of ``as_of`` read; None: no bound."""
        return None if self.lookback is None else as_of - self.lookback

    def reads_within(self, lookback: timedelta | None) -> bool:
        """Whether every event this configuration reads lies within ``lookback`` before T
        (None: unbounded), e.g. in histories stored for a model with that lookback."""
        if lookback is None:
            return True
        return self.lookback is not None and self.lookback <= lookback


#: Event types with per-bucket activity counts and a recency feature.
ACTIVITY_EVENTS: tuple[str, ...] = (
    EventName.PAGE_VIEW,
    EventName.VIEW_ITEM,
    EventName.ADD_TO_CART,
    EventName.REMOVE_FROM_CART,
    EventName.ADD_TO_WISHLIST,
    EventName.BEGIN_CHECKOUT,
    EventName.PURCHASE,
)
#: name -> (start, end) in days before T: the bucket is [T - start, T - end).
BUCKETS: dict[str, tuple[int, int]] = {
    "1d": (1, 0),
    "1_7d": (7, 1),
    "7_14d": (14, 7),
    "14_30d": (30, 14),
}
_BUCKET_TEXT = {
    "1d": "[T-1d, T)",
    "1_7d": "[T-7d, T-1d)",
    "7_14d": "[T-14d, T-7d)",
    "14_30d": "[T-30d, T-14d)",
}
DAYPARTS: dict[str, tuple[int, int]] = {
    "night": (0, 6),
    "morning": (6, 12),
    "afternoon": (12, 18),
    "evening": (18, 24),
}


def _days_before(start: int, end: int) -> Range:
    return Range("offset_us", -start * MICROS_PER_DAY, -end * MICROS_PER_DAY)


def _activity() -> list[Feature]:
    counts: list[Feature] = [
        Aggregate(
            f"n_{event}_{bucket}",
            f"rows of {event} in {_BUCKET_TEXT[bucket]}",
            "count",
            where=RowFilter(events=(event,), ranges=(_days_before(*BUCKETS[bucket]),)),
        )
        for event in ACTIVITY_EVENTS
        for bucket in BUCKETS
    ]
    recency: list[Feature] = []
    for event in ACTIVITY_EVENTS:
        last = Aggregate(
            f"_last_{event}_us", "", "max", "offset_us", RowFilter(events=(event,)), public=False
        )
        recency += [
            last,
            Derived(
                f"days_since_last_{event}",
                f"days from the last {event} to T (null: none in the lookback)",
                "scale",
                last.name,
                factor=-1 / MICROS_PER_DAY,
            ),
        ]
    return counts + recency


def _hidden(name: str, kind: str, column: str | None = None, **where: object) -> Aggregate:
    return Aggregate(name, "", kind, column, RowFilter(**where), public=False)  # type: ignore[arg-type]


def _overall() -> list[Feature]:
    return [
        Aggregate("n_events", "event rows in the lookback", "count"),
        _hidden("_last_event_us", "max", "offset_us"),
        _hidden("_first_event_us", "min", "offset_us"),
        Derived(
            "days_since_last_event",
            "days from the last event to T",
            "scale",
            "_last_event_us",
            factor=-1 / MICROS_PER_DAY,
        ),
        Derived(
            "days_since_first_event",
            "tenure: days from the first event in the lookback to T",
            "scale",
            "_first_event_us",
            factor=-1 / MICROS_PER_DAY,
        ),
        Aggregate(
            "n_sessions",
            "sessions: a new one starts at a change of session_id or "
            "after session_timeout without events",
            "count",
            where=RowFilter(flag="session_start"),
        ),
        Derived(
            "mean_events_per_session", "event rows per session", "ratio", "n_events", "n_sessions"
        ),
        _hidden("_session_time_us", "sum", "session_gap_us"),
        Derived(
            "mean_session_minutes",
            "mean session duration (first to last event), minutes",
            "ratio",
            "_session_time_us",
            "n_sessions",
            factor=1 / MICROS_PER_MINUTE,
        ),
        Aggregate("n_active_days", "distinct local calendar days with events", "n_distinct", "day"),
    ]


def _intent() -> list[Feature]:
    cart, checkout, view = (
        (EventName.ADD_TO_CART,),
        (EventName.BEGIN_CHECKOUT,),
        (EventName.VIEW_ITEM,),
    )
    return [
        Aggregate(
            "n_carts_abandoned",
            "add_to_cart rows whose item was not purchased at or after the add",
            "count",
            where=RowFilter(cart, flag="abandoned"),
        ),
        Aggregate(
            "value_carts_abandoned",
            "price x quantity of the abandoned add_to_cart rows",
            "sum",
            "line_value",
            RowFilter(cart, flag="abandoned"),
        ),
        Aggregate(
            "n_checkouts_abandoned",
            "begin_checkout rows whose item was not purchased at or after the checkout",
            "count",
            where=RowFilter(checkout, flag="abandoned"),
        ),
        Aggregate(
            "n_items_viewed", "distinct items viewed", "n_distinct", "item_id", RowFilter(view)
        ),
        Aggregate(
            "n_categories_viewed",
            "distinct categories viewed",
            "n_distinct",
            "item_category",
            RowFilter(view),
        ),
        Aggregate(
            "n_items_carted",
            "distinct items added to cart",
            "n_distinct",
            "item_id",
            RowFilter(cart),
        ),
        Aggregate(
            "mean_price_viewed",
            "mean price of viewed item rows (null: no prices)",
            "mean",
            "price",
            RowFilter(view),
        ),
        Aggregate(
            "max_price_viewed",
            "highest price viewed (null: no prices)",
            "max",
            "price",
            RowFilter(view),
        ),
        _hidden("_n_events_1d", "count", ranges=(_days_before(1, 0),)),
        _hidden("_n_events_7d", "count", ranges=(_days_before(7, 0),)),
        Derived(
            "share_events_1d",
            "momentum: share of the lookback's event rows in [T-1d, T)",
            "ratio",
            "_n_events_1d",
            "n_events",
        ),
        Derived(
            "share_events_7d",
            "share of the lookback's event rows in [T-7d, T)",
            "ratio",
            "_n_events_7d",
            "n_events",
        ),
    ]


def _history() -> list[Feature]:
    purchase, refund = (EventName.PURCHASE,), (EventName.REFUND,)
    return [
        Aggregate(
            "n_orders",
            "distinct transaction_id among purchase rows",
            "n_distinct",
            "transaction_id",
            RowFilter(purchase),
        ),
        Aggregate(
            "revenue", "sum of revenue over purchase rows", "sum", "revenue", RowFilter(purchase)
        ),
        Derived(
            "avg_order_value",
            "revenue / n_orders (null: no orders)",
            "ratio",
            "revenue",
            "n_orders",
        ),
        Aggregate(
            "n_refunds",
            "distinct transaction_id among refund rows",
            "n_distinct",
            "transaction_id",
            RowFilter(refund),
        ),
        Aggregate(
            "refund_amount",
            "sum of revenue over refund rows (positive)",
            "sum",
            "revenue",
            RowFilter(refund),
        ),
    ]


def _context() -> list[Feature]:
    profile: list[Feature] = [
        Aggregate(
            "logged_in", "1 if any event carries a user_id", "any", where=RowFilter(flag="has_user")
        )
    ]
    for part, (lo, hi) in DAYPARTS.items():
        hidden = _hidden(f"_n_{part}", "count", ranges=(Range("hour", lo, hi),))
        profile += [
            hidden,
            Derived(
                f"share_events_{part}",
                f"share of event rows at local hour [{lo}, {hi})",
                "ratio",
                hidden.name,
                "n_events",
            ),
        ]
    weekend = _hidden("_n_weekend", "count", ranges=(Range("weekday", 5, 7),))
    return [
        *profile,
        weekend,
        Derived(
            "share_events_weekend",
            "share of event rows on local Saturday or Sunday",
            "ratio",
            weekend.name,
            "n_events",
        ),
    ]


#: Every feature in evaluation order (a Derived follows its inputs), hidden ones included.
FEATURES: tuple[Feature, ...] = (*_activity(), *_overall(), *_intent(), *_history(), *_context())
PUBLIC_FEATURES: tuple[Feature, ...] = tuple(f for f in FEATURES if f.public)
#: The stable, named model inputs; select by these names, never by position.
FEATURE_COLUMNS: tuple[str, ...] = tuple(f.name for f in PUBLIC_FEATURES)
FEATURE_DOCS: dict[str, str] = {f.name: f.doc for f in PUBLIC_FEATURES}
#: "int" (Int64, never null) or "float" (Float64, nullable) per public feature.
FEATURE_KINDS: dict[str, str] = {f.name: f.dtype for f in PUBLIC_FEATURES}
