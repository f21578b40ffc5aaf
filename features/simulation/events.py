"""Expand sessions into ordered, timestamped event rows (integer codes, fully vectorised).

Within a session the funnel runs in order: page views (each product page followed by its
view_item), an optional add_to_wishlist, add_to_cart per item, an optional remove_from_cart,
begin_checkout, purchase. Events are spread over the session with exponential gaps scaled so
that the first is at the session start and the last exactly at its end. begin_checkout,
purchase and refund carry one row per item kept in the cart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.events.schema import EventName
from features.simulation.catalog import Catalog
from features.simulation.config import SimulationConfig
from features.simulation.funnel import Browse, Layout, Lines, draw_browse, draw_layout, draw_lines
from features.simulation.ragged import offsets, within
from features.simulation.seasonality import IntArray
from features.simulation.sessions import Sessions
from features.simulation.visitors import US_PER_DAY, Visitors

#: Event names by code, the order used by ``EventRows.event``.
EVENT_CODES: tuple[EventName, ...] = (
    EventName.PAGE_VIEW,
    EventName.VIEW_ITEM,
    EventName.ADD_TO_WISHLIST,
    EventName.ADD_TO_CART,
    EventName.REMOVE_FROM_CART,
    EventName.BEGIN_CHECKOUT,
    EventName.PURCHASE,
    EventName.REFUND,
)
(PAGE_VIEW, VIEW_ITEM, WISHLIST, ADD_TO_CART, REMOVE, CHECKOUT, PURCHASE, REFUND) = range(8)
NONE = -1
#: Mean days, beyond the first, from a purchase to its refund.
REFUND_DELAY_MEAN_DAYS = 6.0


@dataclass(frozen=True)
class EventRows:
    """One entry per (event, item) row, grouped by session; ``NONE`` marks a missing value."""

    visitor: IntArray
    time: IntArray  # UTC microseconds
    event: IntArray  # index into EVENT_CODES
    item: IntArray
    quantity: IntArray
    transaction: IntArray
    session: IntArray


@dataclass(frozen=True)
class _Events:
    """One entry per event (not per row), grouped by session in funnel order."""

    session: IntArray
    event: IntArray
    item: IntArray
    quantity: IntArray
    per_session: IntArray


def _place(sessions: Sessions, browse: Browse, layout: Layout, lines: Lines) -> _Events:
    per_session = layout.total(browse, sessions)
    first = offsets(per_session)
    size = int(per_session.sum())
    event = np.empty(size, dtype=np.int64)
    item = np.full(size, NONE, dtype=np.int64)
    quantity = np.full(size, NONE, dtype=np.int64)

    position = first[browse.session] + within(browse.per_session)
    event[position] = np.where(browse.is_view_item == 1, VIEW_ITEM, PAGE_VIEW)
    item[position[browse.is_view_item == 1]] = browse.viewed_items

    after_browse = first + browse.per_session
    wish = np.flatnonzero(layout.wishlist)
    event[after_browse[wish]] = WISHLIST
    item[after_browse[wish]] = browse.viewed_items[
        offsets(browse.viewed)[wish] + browse.viewed[wish] - 1
    ]

    cart_start = after_browse + layout.wishlist
    position = cart_start[lines.session] + within(layout.added)
    event[position], item[position], quantity[position] = ADD_TO_CART, lines.item, lines.quantity

    removing = np.flatnonzero(layout.removed)
    position = cart_start[removing] + layout.added[removing]
    last_line = lines.first[removing] + layout.added[removing] - 1
    event[position], item[position] = REMOVE, lines.item[last_line]
    quantity[position] = lines.quantity[last_line]

    checkout_at = cart_start + layout.added + layout.removed
    event[checkout_at[sessions.checkout]] = CHECKOUT
    event[checkout_at[sessions.purchase] + 1] = PURCHASE
    return _Events(
        session=np.repeat(np.arange(sessions.count), per_session),
        event=event,
        item=item,
        quantity=quantity,
        per_session=per_session,
    )


def _event_times(sessions: Sessions, per_session: IntArray, rng: np.random.Generator) -> IntArray:
    """Times from session start to end, with exponential gaps; the last lands exactly at end."""
    first = offsets(per_session)
    last = first + per_session - 1
    gaps = rng.exponential(size=int(per_session.sum()))
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    span = elapsed[last] - elapsed[first]
    micros_per_gap = np.divide(
        (sessions.end - sessions.start).astype(np.float64),
        span,
        out=np.zeros(sessions.count),
        where=span > 0,
    )
    since_start = (elapsed - np.repeat(elapsed[first], per_session)) * np.repeat(
        micros_per_gap, per_session
    )
    times = np.repeat(sessions.start, per_session) + np.rint(since_start).astype(np.int64)
    # A purchase is the session end exactly: true_purchase_probability relies on it. A
    # one-event session (never a purchase) keeps its event at the start.
    several = per_session > 1
    times[last[several]] = sessions.end[several]
    return times


def _rows(
    sessions: Sessions, events: _Events, lines: Lines, kept: IntArray, times: IntArray
) -> EventRows:
    """One row per (event, item): checkout and purchase get one row per kept cart line."""
    is_order = (events.event == CHECKOUT) | (events.event == PURCHASE)
    copies = np.where(is_order, kept[events.session], 1)
    source = np.repeat(np.arange(events.event.size), copies)
    session = events.session[source]
    item, quantity = events.item[source], events.quantity[source]
    order_rows = np.flatnonzero(is_order[source])
    line = lines.first[session[order_rows]] + within(copies)[order_rows]
    item[order_rows], quantity[order_rows] = lines.item[line], lines.quantity[line]
    is_purchase = events.event == PURCHASE
    transaction = np.where(is_purchase, np.cumsum(is_purchase) - 1, NONE)
    return EventRows(
        visitor=sessions.visitor[session],
        time=times[source],
        event=events.event[source],
        item=item,
        quantity=quantity,
        transaction=transaction[source],
        session=session,
    )


def _refunds(
    config: SimulationConfig, rows: EventRows, orders: int, rng: np.random.Generator
) -> EventRows:
    """Copies of the rows of refunded orders, one to a few weeks after the purchase."""
    refunded = rng.random(orders) < config.refund_rate
    delay = US_PER_DAY + rng.exponential(REFUND_DELAY_MEAN_DAYS * US_PER_DAY, orders)
    purchase_rows = np.flatnonzero(rows.event == PURCHASE)
    picked = purchase_rows[refunded[rows.transaction[purchase_rows]]]
    order = rows.transaction[picked]
    return EventRows(
        visitor=rows.visitor[picked],
        time=rows.time[picked] + np.rint(delay[order]).astype(np.int64),
        event=np.full(picked.size, REFUND, dtype=np.int64),
        item=rows.item[picked],
        quantity=rows.quantity[picked],
        transaction=order,
        session=np.full(picked.size, NONE, dtype=np.int64),
    )


def expand_events(
    config: SimulationConfig,
    visitors: Visitors,
    sessions: Sessions,
    catalog: Catalog,
    rng: np.random.Generator,
) -> list[EventRows]:
    """Session rows (grouped by session) and refund rows, some beyond the simulated period."""
    browse = draw_browse(sessions, visitors, catalog, rng)
    lines = draw_lines(sessions, browse, rng)
    layout = draw_layout(config, sessions, browse, lines, rng)
    events = _place(sessions, browse, layout, lines)
    times = _event_times(sessions, events.per_session, rng)
    rows = _rows(sessions, events, lines, layout.kept, times)
    return [rows, _refunds(config, rows, int(sessions.purchase.sum()), rng)]
