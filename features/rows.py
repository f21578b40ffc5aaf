"""The row model: canonical events in the lookback window, with the per-row columns that
feature declarations (``features.definitions``) filter and aggregate.

Input: a narwhals LazyFrame of canonical events plus ``event_us`` (``event_time`` as Int64
microseconds since the epoch; ``features.engines.with_event_micros`` adds it natively,
because narwhals has no portable timestamp-to-integer conversion for Spark).

Output grain: one row per event row of the input with ``as_of - lookback <= event_time <
as_of`` (``event_time < as_of`` for a full-history lookback). Columns: ``visitor_id``,
``event_name``, ``item_id``, ``item_category``, ``transaction_id``, ``price``, ``revenue`` and

- ``offset_us``: ``event_time - as_of`` in microseconds (negative);
- ``line_value``: ``price * quantity`` (a missing quantity counts as 1);
- ``session_start``: the row opens a session. Rows of a visitor are ordered
  by (event_time, session_id); a row opens a session when it is the visitor's first, when it
  comes more than ``session_timeout`` after the previous row, or when both rows carry a
  session_id and they differ;
- ``session_gap_us``: time since the previous row when both are in one session, else 0 (so
  a session's duration is the sum over its rows);
- ``abandoned``: no purchase row of the same visitor and item_id (null matches null) at or
  after this row's time, within the window;
- ``has_user``: the row carries a user_id;
- ``hour``, ``weekday`` (0 = Monday), ``day`` (days since the epoch): local time, i.e. UTC
  plus ``local_time_offset``.

Only events before ``as_of`` enter, so nothing at or after ``as_of`` can change a row.

Batch engines get the model as two frames of the same rows: ``build_rows`` (everything but
the session columns; it streams) and ``build_session_rows`` (``visitor_id``, ``day`` and
the session columns, which need a window ordered by time). The online evaluator
(``features.online``) builds the same model with numpy.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import narwhals as nw

from features.definitions import MICROS_PER_DAY, MICROS_PER_HOUR, FeatureConfig
from features.events.schema import EventName

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError(f"time must be timezone-aware, got {moment!r}")
    return (moment - _EPOCH) // _MICROSECOND


def micros(duration: timedelta) -> int:
    return duration // _MICROSECOND


def window_rows(events: nw.LazyFrame, as_of: datetime, config: FeatureConfig) -> nw.LazyFrame:
    """Filter ``events`` (with ``event_us``) to the lookback window before ``as_of``."""
    event_us = nw.col("event_us")
    before = event_us < to_micros(as_of)
    start = config.window_start(as_of)
    return events.filter(before if start is None else (event_us >= to_micros(start)) & before)


#: Row-model columns that need an ordered window; they live in the narrow frame of
#: ``build_session_rows`` (with ``day``, for distinct days) so the wide frame streams.
SESSION_COLUMNS = frozenset({"session_start", "session_gap_us"})
NARROW_COLUMNS = SESSION_COLUMNS | {"day"}


def build_rows(events: nw.LazyFrame, as_of: datetime, config: FeatureConfig) -> nw.LazyFrame:
    """The row model of ``events`` as of ``as_of``, except ``SESSION_COLUMNS``."""
    as_of_us = to_micros(as_of)
    local_us = nw.col("event_us") + micros(config.local_time_offset)
    rows = window_rows(events, as_of, config).select(
        "visitor_id",
        "event_us",
        "event_name",
        "item_id",
        "item_category",
        "transaction_id",
        "price",
        "revenue",
        # Join key in which a missing item matches a missing item.
        _item=nw.col("item_id").fill_null(""),
        offset_us=nw.col("event_us") - as_of_us,
        line_value=nw.col("price") * nw.col("quantity").fill_null(1),
        has_user=~nw.col("user_id").is_null(),
        hour=(local_us // MICROS_PER_HOUR) % 24,
        day=local_us // MICROS_PER_DAY,
    )
    # A join on the few purchase rows is ~3x cheaper than a window max over (visitor, item).
    last_buy = (
        rows.filter(nw.col("event_name") == EventName.PURCHASE.value)
        .group_by("visitor_id", "_item")
        .agg(_last_buy_us=nw.col("event_us").max())
    )
    last = nw.col("_last_buy_us")
    return (
        rows.join(last_buy, on=["visitor_id", "_item"], how="left")
        .with_columns(
            abandoned=last.is_null() | (last < nw.col("event_us")),
            # 1970-01-01 was a Thursday (weekday 3).
            weekday=(nw.col("day") + 3) % 7,
        )
        .drop("_item", "_last_buy_us")
    )


def build_session_rows(
    events: nw.LazyFrame, as_of: datetime, config: FeatureConfig
) -> nw.LazyFrame:
    """``visitor_id`` and ``NARROW_COLUMNS`` for the rows of ``build_rows``."""
    order = ["event_us", "_sid"]
    rows = window_rows(events, as_of, config).select(
        "visitor_id",
        "event_us",
        _sid=nw.col("session_id").fill_null(""),
        day=(nw.col("event_us") + micros(config.local_time_offset)) // MICROS_PER_DAY,
    )
    rows = rows.with_columns(
        _prev_us=nw.col("event_us").shift(1).over("visitor_id", order_by=order),
        _prev_sid=nw.col("_sid").shift(1).over("visitor_id", order_by=order),
    )
    gap = nw.col("event_us") - nw.col("_prev_us")
    sid, prev_sid = nw.col("_sid"), nw.col("_prev_sid")
    same_session = (
        ~nw.col("_prev_us").is_null()
        & (gap <= micros(config.session_timeout))
        & ((sid == "") | (prev_sid == "") | (sid == prev_sid))
    )
    return rows.select(
        "visitor_id",
        "day",
        session_start=~same_session,
        session_gap_us=nw.when(same_session).then(gap).otherwise(0),
    )
