"""Knobs of the event simulator; the defaults give a plausible mid-sized web shop."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Rates marked "median intent" apply to a visitor whose intent logit is 0.

    Defaults produce about 10 events per visitor over 90 days and 2-4% of active visitors
    purchasing in any 30-day window.
    """

    visitors: int = 100_000
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    days: int = 90
    seed: int = 42
    #: share of visitors already active at ``start`` (the rest arrive during the period)
    initial_share: float = 0.3
    #: mean of the exponential time from arrival (or ``start``) to churn, in days
    lifetime_days: float = 40.0
    #: median return sessions per day while alive, at average seasonality
    session_rate_median: float = 0.035
    #: lognormal sigma of the per-visitor session rate (heavy tail of frequent visitors)
    session_rate_sigma: float = 1.0
    #: session intensity on Saturday and Sunday relative to weekdays
    weekend_factor: float = 1.3
    #: mean session length in minutes, first to last event (exponential)
    session_minutes: float = 12.0
    #: standard deviation of the latent purchase intent on the logit scale
    intent_sd: float = 1.0
    #: P(add_to_cart) per session, median intent
    cart_rate: float = 0.04
    #: P(begin_checkout | add_to_cart), median intent
    checkout_rate: float = 0.35
    #: P(purchase | begin_checkout), median intent
    purchase_rate: float = 0.55
    #: mean page views per session (geometric, at least 1)
    page_views_mean: float = 3.0
    #: share of page views that are product pages and so also send view_item, median intent
    product_page_share: float = 0.45
    #: P(one cart item is removed | add_to_cart)
    remove_rate: float = 0.15
    #: P(add_to_wishlist | the session viewed an item)
    wishlist_rate: float = 0.04
    #: P(an order is refunded, 1 to ~3 weeks later)
    refund_rate: float = 0.04
    #: share of visitors who log in (their events carry a user_id), median intent
    login_share: float = 0.25
    #: catalog size
    items: int = 5_000
    #: number of item categories
    categories: int = 20
    # Campaign response (``features.simulation.response``): what a contact at T changes in
    # the outcome window after it. The defaults reproduce published effects on the default
    # shop (docs/routing.md): email about +88% relative purchases over 14 days among
    # subscribed recent visitors (Hillstrom's e-mail test: 0.57% -> 1.07%), ads about +10%
    # (Johnson, Lewis and Nubbemeyer 2017, "Ghost Ads": +10.5% purchases).
    #: P(an email causes a purchase) for a visitor of median intent seen just before T
    email_response_rate: float = 0.030
    #: P(an ad reach causes a purchase), same visitor
    ads_response_rate: float = 0.0034
    #: how strongly intent moves the response: rate x 2 sigmoid(slope x intent logit)
    response_intent_slope: float = 0.5
    #: the response fades with the time since the visitor was last seen (exponential, days)
    response_recency_days: float = 10.0
    #: mean days from the contact to the purchase it causes (exponential)
    response_delay_days: float = 2.0
    #: share of visitors whom a contact puts off: no purchase in the window ("sleeping dogs")
    sleeping_dog_share: float = 0.02

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() != timedelta(0):
            raise ValueError(f"start must be a UTC-aware datetime, got {self.start!r}")
        if self.visitors < 1 or self.days < 1 or self.items < 1 or self.categories < 1:
            raise ValueError("visitors, days, items and categories must be positive")
        shares = {
            "initial_share": self.initial_share,
            "cart_rate": self.cart_rate,
            "checkout_rate": self.checkout_rate,
            "purchase_rate": self.purchase_rate,
            "product_page_share": self.product_page_share,
            "remove_rate": self.remove_rate,
            "wishlist_rate": self.wishlist_rate,
            "refund_rate": self.refund_rate,
            "login_share": self.login_share,
            "email_response_rate": self.email_response_rate,
            "ads_response_rate": self.ads_response_rate,
            "sleeping_dog_share": self.sleeping_dog_share,
        }
        outside = {name: value for name, value in shares.items() if not 0.0 <= value <= 1.0}
        if outside:
            raise ValueError(f"probabilities outside [0, 1]: {outside}")
        if min(self.lifetime_days, self.session_rate_median, self.session_minutes) <= 0:
            raise ValueError("lifetime_days, session_rate_median, session_minutes must be > 0")
        if self.page_views_mean < 1 or self.weekend_factor <= 0:
            raise ValueError("page_views_mean must be >= 1 and weekend_factor > 0")
        if min(self.response_recency_days, self.response_delay_days) <= 0:
            raise ValueError("response_recency_days and response_delay_days must be > 0")

    @property
    def end(self) -> datetime:
        """Exclusive end of the simulated period."""
        return self.start + timedelta(days=self.days)

    def to_json(self) -> str:
        """Every knob as JSON (``start`` in ISO 8601): the prior an ideal observer needs."""
        return json.dumps({**asdict(self), "start": self.start.isoformat()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> SimulationConfig:
        """The inverse of ``to_json``; unknown keys are an error, missing ones take defaults."""
        values: dict[str, Any] = json.loads(text)
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown simulation settings {sorted(unknown)}")
        if "start" in values:
            values["start"] = datetime.fromisoformat(values["start"])
        return cls(**values)
