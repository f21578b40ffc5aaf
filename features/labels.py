"""Purchase labels: did the visitor buy in ``[as_of + gap, as_of + gap + horizon)``?

Features read ``[T - lookback, T)`` (``features.definitions``) and labels ``[T, T + horizon)``
(no gap): the windows partition time, so every event is in exactly one of them, and a
purchase stamped at the cut itself (a day-stamped order on the cut day) is a label.

An order is a distinct ``transaction_id`` among purchase rows in the label window.
Refunds handled: an order whose refund rows *in the same window* add up to at least its
purchase revenue (both summed over rows, nulls as 0) is fully refunded and does not count;
a partial refund leaves it counted. A purchase row without a ``transaction_id`` counts as an
order (it cannot be matched to a refund). Only events inside the label window are read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import narwhals as nw

from features.events.schema import EventName
from features.rows import micros, to_micros

_PURCHASE, _REFUND = EventName.PURCHASE.value, EventName.REFUND.value


def label_window(as_of: datetime, gap: timedelta, horizon: timedelta) -> tuple[int, int]:
    """``(lo, hi)`` in epoch microseconds; the window is ``lo <= event_us < hi``."""
    lo = to_micros(as_of) + micros(gap)
    return lo, lo + micros(horizon)


def build_labels(
    events: nw.LazyFrame[Any], as_of: datetime, *, gap: timedelta, horizon: timedelta
) -> nw.LazyFrame[Any]:
    """One row (``visitor_id``, ``label`` = 1) per visitor with a counted order in the window.

    ``events``: canonical events plus ``event_us`` (see ``features.engines``).
    """
    lo, hi = label_window(as_of, gap, horizon)
    event, revenue = nw.col("event_name"), nw.col("revenue")
    window = events.filter(
        (nw.col("event_us") >= lo) & (nw.col("event_us") < hi) & event.is_in([_PURCHASE, _REFUND])
    )
    orders = window.group_by("visitor_id", "transaction_id").agg(
        purchase_rows=(event == _PURCHASE).cast(nw.Int64).sum(),
        refund_rows=(event == _REFUND).cast(nw.Int64).sum(),
        paid=nw.when(event == _PURCHASE).then(revenue).sum(),
        refunded=nw.when(event == _REFUND).then(revenue).sum(),
    )
    counted = (nw.col("purchase_rows") > 0) & (
        nw.col("transaction_id").is_null()
        | (nw.col("refund_rows") == 0)
        | (nw.col("refunded") < nw.col("paid"))
    )
    return (
        orders.filter(counted)
        .select("visitor_id")
        .unique()
        .with_columns(label=nw.lit(1, dtype=nw.Int64))
    )
