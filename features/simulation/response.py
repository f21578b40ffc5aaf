"""Campaign response: what an email or an ad reach at T changes in the window ``(T, T + h]``.

The generative model, per visitor and channel (``email``, ``ads``), on top of the shop's own
behaviour (``features.simulation.sessions``), which a contact leaves as it is except:

- **sleeping dogs** (``sleeping_dog_share`` of visitors, a fixed trait per channel): a contact
  puts them off, and they buy nothing in the window (their purchases there are cancelled;
  the carts and checkouts stay, as abandoned ones);
- everyone else **responds** with probability
  ``r = min(1, rate × 2σ(slope × intent logit) × exp(-(T - last seen) / recency))``, ``rate``
  the channel's ``*_response_rate``: a visitor alive at T (a churned one is a lost cause) has
  one extra session that buys, ending ``D ~ Exponential(response_delay_days)`` after T; it
  counts when it ends in the window. Caused orders are not refunded.

The effect is heterogeneous and not proportional to the base rate: it grows with intent and
fades with the time since the visitor was last seen, and a visitor who would buy anyway (a
*sure thing*) gains little. The true effect of contacting a visitor, exactly:

    Δp = (1 - p0) × r × (1 - exp(-h / delay))    (responsive)
    Δp = -p0                                     (sleeping dog)

where ``p0`` is ``true_purchase_probability`` over the window: P(purchase in the window |
contacted) - P(purchase in the window | not contacted).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from features.events.schema import EVENT_SCHEMA
from features.simulation.as_of import last_seen
from features.simulation.config import SimulationConfig
from features.simulation.events import expand_events
from features.simulation.frames import events_frame
from features.simulation.generator import SimulatedData, World, stream
from features.simulation.seasonality import FloatArray
from features.simulation.sessions import CART_STOP, Sessions
from features.simulation.truth import _micros, true_purchase_probability
from features.simulation.visitors import US_PER_DAY, US_PER_MINUTE, sigmoid

CHANNELS: tuple[str, ...] = ("email", "ads")
#: Columns of ``true_effects``.
EFFECT_COLUMNS: tuple[str, ...] = (
    "visitor_id", "p_control", "delta_email", "delta_ads", "sleeping_dog_email",
    "sleeping_dog_ads", "response_email", "response_ads",
)  # fmt: skip


def _rate(config: SimulationConfig, channel: str) -> float:
    return float(getattr(config, f"{channel}_response_rate"))


def sleeping_dogs(config: SimulationConfig) -> dict[str, np.ndarray]:
    """Per channel, which visitors (by number) a contact puts off: a trait, the same every
    round."""
    rng = stream(config, "traits")
    return {c: rng.random(config.visitors) < config.sleeping_dog_share for c in CHANNELS}


def true_effects(
    config: SimulationConfig,
    shop: World,
    truth: pl.DataFrame,
    observed: pl.DataFrame | pl.LazyFrame,
    as_of: datetime,
    horizon: timedelta,
) -> pl.DataFrame:
    """``EFFECT_COLUMNS``, one row per visitor: ``p_control`` (P(purchase in the window)
    without a contact), ``delta_<channel>`` (what a contact at ``as_of`` adds to it),
    ``response_<channel>`` (P(a contact causes a purchase), the window aside) and the
    sleeping-dog traits. ``observed``: the shop's events before ``as_of`` (for recency)."""
    p0 = true_purchase_probability(truth, as_of, horizon).get_column("p_true").to_numpy()
    t_us = _micros(as_of)
    seen = last_seen(observed, as_of)
    since = np.full(config.visitors, np.inf)
    index = _numbers(seen.get_column("visitor_id"), shop)
    since[index] = (t_us - seen.get_column("last_seen").dt.epoch("us").to_numpy()) / US_PER_DAY
    visitors = shop.visitors
    alive = (visitors.alive_from <= t_us) & (t_us < visitors.churn)
    keen = 2 * sigmoid(config.response_intent_slope * visitors.intent_logit)
    recent = np.exp(-since / config.response_recency_days)
    in_window = -np.expm1(-(horizon / timedelta(days=1)) / config.response_delay_days)
    dogs = sleeping_dogs(config)
    columns: dict[str, object] = {"visitor_id": shop.ids, "p_control": p0}
    for channel in CHANNELS:
        response: FloatArray = np.where(
            alive & ~dogs[channel], np.minimum(1.0, _rate(config, channel) * keen * recent), 0.0
        )
        columns[f"delta_{channel}"] = np.where(dogs[channel], -p0, (1 - p0) * response * in_window)
        columns[f"sleeping_dog_{channel}"] = dogs[channel]
        columns[f"response_{channel}"] = response
    return pl.DataFrame(columns).select(EFFECT_COLUMNS)


@dataclass(frozen=True)
class CampaignOutcome:
    """What a campaign round reveals: ``events`` (canonical, the shop's own events of the
    revealed span with the contacts' effects applied, then the purchases they caused),
    ``effects`` (``true_effects`` with ``channel``: the one each visitor got, null if none),
    and the counts of caused and prevented orders and the transactions prevented."""

    events: pl.DataFrame
    effects: pl.DataFrame
    caused: dict[str, int]
    prevented: dict[str, int]
    prevented_transactions: list[str]


def campaign_outcome(
    config: SimulationConfig,
    shop: World,
    data: SimulatedData,
    contacted: pl.DataFrame,
    as_of: datetime,
    horizon: timedelta,
    *,
    reveal_from: datetime,
    already_prevented: frozenset[str] = frozenset(),
) -> CampaignOutcome:
    """Apply ``contacted`` (``visitor_id, channel``: ``email`` or ``ads``) at ``as_of`` to
    the shop (``data = simulate(config)``, ``shop = world(config)``), and reveal its events
    in ``[reveal_from, as_of + horizon)``. Orders cancelled in this or an earlier round
    (``already_prevented``) lose their refunds too, whenever those come."""
    end = as_of + horizon
    if end > config.end:
        raise ValueError(f"the window ends {end:%Y-%m-%d}, after the simulation's {config.end}")
    if reveal_from > as_of:
        raise ValueError(f"as_of {as_of} is before the revealed events, up to {reveal_from}")
    unknown = set(contacted.get_column("channel").unique().to_list()) - set(CHANNELS)
    if unknown:
        raise ValueError(f"unknown channels {sorted(unknown)}; expected {CHANNELS}")
    observed = data.events.filter(pl.col("event_time") < as_of)
    effects = true_effects(config, shop, data.truth, observed, as_of, horizon).join(
        contacted.select("visitor_id", "channel"), on="visitor_id", how="left"
    )
    span = data.events.filter((pl.col("event_time") >= reveal_from) & (pl.col("event_time") < end))
    cancelled = _cancelled(span, effects, as_of, end)
    dropped = list(already_prevented | set(cancelled.get_column("transaction_id")))
    order_rows = pl.col("event_name").is_in(["purchase", "refund"])
    organic = span.filter(~(order_rows & pl.col("transaction_id").is_in(dropped)))
    caused, campaign = _caused_purchases(config, shop, effects, as_of, end)
    events = pl.concat([organic, campaign]).sort("event_time", maintain_order=True)
    counts = dict(cancelled.group_by("channel").len().iter_rows())
    prevented = {c: int(counts.get(c, 0)) for c in CHANNELS}
    transactions = sorted(cancelled.get_column("transaction_id").to_list())
    return CampaignOutcome(events, effects, caused, prevented, transactions)


def _numbers(ids: pl.Series, shop: World) -> np.ndarray:
    """Visitor numbers (positions in ``shop.ids``) of simulated visitor ids."""
    position = pl.DataFrame({"visitor_id": shop.ids, "n": np.arange(shop.ids.len())})
    found = pl.DataFrame({"visitor_id": ids}).join(position, on="visitor_id", how="left")
    if found.get_column("n").null_count():
        raise ValueError("visitor ids that the simulation does not have")
    return found.get_column("n").to_numpy()


def _cancelled(
    span: pl.DataFrame, effects: pl.DataFrame, as_of: datetime, end: datetime
) -> pl.DataFrame:
    """``transaction_id, channel`` of the orders of contacted sleeping dogs in the window."""
    dog = pl.lit(False)
    for channel in CHANNELS:
        dog = dog | ((pl.col("channel") == channel) & pl.col(f"sleeping_dog_{channel}"))
    dogs = effects.filter(dog).select("visitor_id", "channel")
    purchases = span.filter(
        (pl.col("event_name") == "purchase")
        & (pl.col("event_time") > as_of)
        & (pl.col("event_time") <= end)
    )
    return purchases.join(dogs, on="visitor_id").select("transaction_id", "channel").unique()


def _caused_purchases(
    config: SimulationConfig,
    shop: World,
    effects: pl.DataFrame,
    as_of: datetime,
    end: datetime,
) -> tuple[dict[str, int], pl.DataFrame]:
    """The buying sessions the contacts cause, as canonical events, and their count per
    channel. Drawn from a stream of the round (its ``as_of``), so a round is reproducible."""
    t_us, end_us = _micros(as_of), _micros(end)
    rng = stream(config, "campaigns", t_us)
    contacted = effects.filter(pl.col("channel").is_not_null())
    response = np.zeros(contacted.height)
    for channel in CHANNELS:
        chosen = (contacted.get_column("channel") == channel).to_numpy()
        response[chosen] = contacted.get_column(f"response_{channel}").to_numpy()[chosen]
    responds = rng.random(contacted.height) < response
    delay = rng.exponential(config.response_delay_days * US_PER_DAY, contacted.height)
    ends = t_us + np.rint(delay).astype(np.int64)
    happens = responds & (ends <= end_us)
    who = _numbers(contacted.get_column("visitor_id").filter(pl.Series(happens)), shop)
    channels = contacted.get_column("channel").filter(pl.Series(happens))
    caused = {c: int((channels == c).sum()) for c in CHANNELS}
    if who.size == 0:
        return caused, pl.DataFrame(schema=EVENT_SCHEMA)
    n = who.size
    length = np.rint(rng.exponential(config.session_minutes * US_PER_MINUTE, n)).astype(np.int64)
    session_end = ends[happens]
    sessions = Sessions(
        visitor=who.astype(np.int64),
        start=np.maximum(session_end - length, t_us + 1),
        end=session_end,
        cart=np.ones(n, dtype=bool),
        checkout=np.ones(n, dtype=bool),
        purchase=np.ones(n, dtype=bool),
        page_views=rng.geometric(1.0 / config.page_views_mean, n).astype(np.int64),
        cart_items=rng.geometric(CART_STOP, n).astype(np.int64),
    )
    rows, _refunds = expand_events(config, shop.visitors, sessions, shop.catalog, rng)
    frame = events_frame([rows], shop.catalog, shop.ids, shop.visitors, config)
    # Their own order and session ids, apart from the shop's own (t…, s…).
    tag = f"c{as_of:%Y%m%d%H%M%S}-"
    return caused, frame.with_columns(
        (tag + pl.col("transaction_id")).alias("transaction_id"),
        (tag + pl.col("session_id")).alias("session_id"),
    )
