"""Sessions: when each visitor visits, and how far down the funnel each visit goes.

Timing contract (what makes ``true_purchase_probability`` exact): a session's last event is
at ``end``; when the session buys, its purchase is that last event. Arrival sessions start at
the visitor's ``alive_from`` and last ``L ~ Exponential(session_minutes)``. Return sessions
*end* at the points of a Poisson process on ``(alive_from, churn]`` with intensity
``session_rate * s(t)`` and start ``L`` earlier (never before an arrival). Each session
buys independently with the visitor's ``p_buy`` = P(cart) P(checkout | cart) P(purchase |
checkout); nothing else about the session depends on whether it buys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulation.config import SimulationConfig
from features.simulation.seasonality import IntArray, inverse_seasonal_days, seasonal_days
from features.simulation.visitors import US_PER_MINUTE, BoolArray, Visitors, time_us

#: P(stop adding items) after each add_to_cart: 1 / mean items added per cart session.
CART_STOP = 0.7


@dataclass(frozen=True)
class Sessions:
    """One entry per session (index = session number); times in UTC microseconds."""

    visitor: IntArray
    start: IntArray
    end: IntArray
    cart: BoolArray
    checkout: BoolArray
    purchase: BoolArray
    page_views: IntArray
    cart_items: IntArray  # items the visitor means to add; 0 without add_to_cart

    @property
    def count(self) -> int:
        return int(self.visitor.size)


def _lengths(config: SimulationConfig, rng: np.random.Generator, n: int) -> IntArray:
    return np.rint(rng.exponential(config.session_minutes * US_PER_MINUTE, n)).astype(np.int64)


def _session_times(
    config: SimulationConfig, visitors: Visitors, rng: np.random.Generator
) -> tuple[IntArray, IntArray, IntArray]:
    """(visitor, start, end) of arrival sessions followed by return sessions."""
    _, period_end = time_us(config)
    arriving = np.flatnonzero(visitors.arrives)
    arrival_start = visitors.alive_from[arriving]
    arrival_end = arrival_start + _lengths(config, rng, arriving.size)

    # Given their number, Poisson points are i.i.d. uniform in seasonal time.
    window_end = np.minimum(visitors.churn, period_end)
    lo = seasonal_days(visitors.alive_from, config.weekend_factor)
    hi = seasonal_days(np.maximum(window_end, visitors.alive_from), config.weekend_factor)
    counts = rng.poisson(visitors.session_rate * (hi - lo))
    owner = np.repeat(np.arange(visitors.alive_from.size), counts)
    points = rng.uniform(lo[owner], hi[owner])
    return_end = inverse_seasonal_days(points, config.weekend_factor)
    return_end = np.clip(return_end, visitors.alive_from[owner] + 1, window_end[owner])
    # Sessions of new visitors cannot begin before their arrival; those of visitors already
    # active may have begun before the period (their earlier events are not observed).
    earliest = np.where(visitors.arrives[owner], visitors.alive_from[owner], np.iinfo(np.int64).min)
    return_start = np.maximum(return_end - _lengths(config, rng, owner.size), earliest)
    return (
        np.concatenate([arriving, owner]),
        np.concatenate([arrival_start, return_start]),
        np.concatenate([arrival_end, return_end]),
    )


def draw_sessions(
    config: SimulationConfig, visitors: Visitors, rng: np.random.Generator
) -> Sessions:
    visitor, start, end = _session_times(config, visitors, rng)
    n = visitor.size
    cart = rng.random(n) < visitors.p_cart[visitor]
    checkout = cart & (rng.random(n) < visitors.p_checkout[visitor])
    purchase = checkout & (rng.random(n) < visitors.p_purchase[visitor])
    page_views = rng.geometric(1.0 / config.page_views_mean, n).astype(np.int64)
    cart_items = np.where(cart, rng.geometric(CART_STOP, n), 0).astype(np.int64)
    return Sessions(
        visitor=visitor.astype(np.int64),
        start=start,
        end=end,
        cart=cart,
        checkout=checkout,
        purchase=purchase,
        page_views=page_views,
        cart_items=cart_items,
    )
