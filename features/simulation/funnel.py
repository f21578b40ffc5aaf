"""What each session contains: page views and viewed items, cart lines, and step counts.

Only counts and items are decided here; ``events`` lays them out in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulation.catalog import Catalog
from features.simulation.config import SimulationConfig
from features.simulation.ragged import offsets, within
from features.simulation.seasonality import IntArray
from features.simulation.sessions import Sessions
from features.simulation.visitors import Visitors

#: Mean extra units per cart line (Poisson): most lines have quantity 1.
EXTRA_QUANTITY_MEAN = 0.25


@dataclass(frozen=True)
class Browse:
    """Page views, each product page followed by its view_item, grouped by session."""

    session: IntArray  # per browse event
    is_view_item: IntArray  # per browse event, 0 = page_view, 1 = view_item
    per_session: IntArray  # browse events per session
    viewed: IntArray  # view_item events per session
    viewed_items: IntArray  # items of all view_item events, grouped by session, in order


def draw_browse(
    sessions: Sessions, visitors: Visitors, catalog: Catalog, rng: np.random.Generator
) -> Browse:
    pv_session = np.repeat(np.arange(sessions.count), sessions.page_views)
    product = rng.random(pv_session.size) < visitors.p_product_page[sessions.visitor[pv_session]]
    # Sessions that add to cart land on a product page, so there is always an item to add.
    product[offsets(sessions.page_views)[sessions.cart]] = True
    steps = 1 + product.astype(np.int64)
    viewed = np.bincount(pv_session[product], minlength=sessions.count).astype(np.int64)
    return Browse(
        session=np.repeat(pv_session, steps),
        is_view_item=within(steps),
        per_session=sessions.page_views + viewed,
        viewed=viewed,
        viewed_items=catalog.draw_items(rng, int(viewed.sum())),
    )


@dataclass(frozen=True)
class Lines:
    """Cart lines (distinct items added to cart), grouped by session in the order added."""

    session: IntArray
    item: IntArray
    quantity: IntArray
    per_session: IntArray

    @property
    def first(self) -> IntArray:
        """Per session: index of its first line."""
        return offsets(self.per_session)


def draw_lines(sessions: Sessions, browse: Browse, rng: np.random.Generator) -> Lines:
    wanted = np.minimum(sessions.cart_items, browse.viewed)
    session = np.repeat(np.arange(sessions.count), wanted)
    # The visitor adds the first items they viewed in the session...
    item = browse.viewed_items[offsets(browse.viewed)[session] + within(wanted)]
    # ...but an item viewed twice is one cart line, so no two rows of an order are identical.
    pair = session * (int(item.max(initial=0)) + 1) + item
    keep = np.sort(np.unique(pair, return_index=True)[1])
    return Lines(
        session=session[keep],
        item=item[keep],
        quantity=1 + rng.poisson(EXTRA_QUANTITY_MEAN, keep.size).astype(np.int64),
        per_session=np.bincount(session[keep], minlength=sessions.count).astype(np.int64),
    )


@dataclass(frozen=True)
class Layout:
    """Per-session event counts, in funnel order."""

    wishlist: IntArray
    added: IntArray
    removed: IntArray
    kept: IntArray

    def total(self, browse: Browse, sessions: Sessions) -> IntArray:
        return (
            browse.per_session + self.wishlist + self.added + self.removed
            + sessions.checkout + sessions.purchase
        )  # fmt: skip


def draw_layout(
    config: SimulationConfig,
    sessions: Sessions,
    browse: Browse,
    lines: Lines,
    rng: np.random.Generator,
) -> Layout:
    n = sessions.count
    wishlist = (browse.viewed > 0) & (rng.random(n) < config.wishlist_rate)
    added = lines.per_session
    # A checkout needs an item left in the cart, so removal then needs two items.
    removable = sessions.cart & (~sessions.checkout | (added >= 2))
    removed = removable & (rng.random(n) < config.remove_rate)
    return Layout(
        wishlist=wishlist.astype(np.int64),
        added=added,
        removed=removed.astype(np.int64),
        kept=added - removed,
    )
