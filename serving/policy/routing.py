"""The routing policy: which path each visitor goes down, why, and the expected value behind it.

Pure: arrays and a ``RoutingPolicy`` in, decisions out. ``route_batch`` decides a whole run
(vectorised, the ad budget ranks visitors against each other); ``route`` decides one visitor
in real time and *is* ``route_batch`` applied to one row, with the budget replaced by the
expected-value floor at which the last batch run's budget ran out.

Expected value of contacting a visitor through a channel, in currency:

    EV = Δp * order_value * margin - cost_per_contact

``Δp`` is how much the contact raises the visitor's purchase probability
(``serving.policy.lift``): measured on the holdouts of past runs where a ``LiftModel`` is
given, else the assumption ``p * incremental_lift`` (``p`` the calibrated purchase
probability, ``incremental_lift`` the assumed relative rise: 0.05 turns p = 0.20 into 0.21).
``order_value`` is the visitor's own average order value where known, else the policy
default.

Decision, in order: no channel the visitor consented to -> ``none``/``no_consent``; a purchase
within ``suppression_days`` -> ``none``/``recent_purchase``; no consented channel worth more
than ``min_expected_value`` -> ``none``/``below_threshold``; else the channel with the highest
EV (email on a tie). Ads are rationed by the budget, highest EV first; a visitor who misses it
falls back to email when email is worth it, else ``none``/``budget_exhausted``. Finally a
deterministic share of each channel's audience is held out: ``holdout``/``holdout``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from features.events.schema import AdsConsent, EmailStatus
from serving.policy.holdout import VisitorIds, holdout_draws
from serving.policy.lift import LiftModel, incremental_probability

Route = Literal["none", "email_remarketing", "ad_retargeting", "holdout"]
Reason = Literal[
    "no_consent",
    "recent_purchase",
    "below_threshold",
    "budget_exhausted",
    "expected_value",
    "holdout",
]
#: Code -> name; decisions carry the codes (int8), names are looked up at the edges.
ROUTES: tuple[Route, ...] = ("none", "email_remarketing", "ad_retargeting", "holdout")
REASONS: tuple[Reason, ...] = (
    "no_consent",
    "recent_purchase",
    "below_threshold",
    "budget_exhausted",
    "expected_value",
    "holdout",
)
NONE, EMAIL, ADS, HOLDOUT = range(4)
NO_CONSENT, RECENT_PURCHASE, BELOW_THRESHOLD, BUDGET_EXHAUSTED, EXPECTED_VALUE, HELD_OUT = range(6)
FloatArray = npt.NDArray[np.float64]


class ChannelPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    cost_per_contact: float = Field(ge=0, description="cost of one contact, in currency")
    incremental_lift: float = Field(
        ge=0, description="assumed relative rise in purchase probability caused by a contact"
    )
    holdout_share: float = Field(
        0.05, ge=0, le=1, description="share of the channel's audience kept out to measure it"
    )


class AdBudget(BaseModel):
    """Per run; None means no limit of that kind."""

    model_config = ConfigDict(frozen=True)

    max_audience: int | None = Field(None, ge=0, description="visitors sent to ads at most")
    max_spend: float | None = Field(None, ge=0, description="ad spend at most, in currency")


class RoutingPolicy(BaseModel):
    """Business configuration of routing: changed on a business schedule, never retrained."""

    model_config = ConfigDict(frozen=True)

    email: ChannelPolicy = ChannelPolicy(cost_per_contact=0.002, incremental_lift=0.05)
    ads: ChannelPolicy = ChannelPolicy(cost_per_contact=0.25, incremental_lift=0.10)
    ad_budget: AdBudget = AdBudget(max_spend=5_000.0)
    margin: float = Field(0.3, gt=0, le=1, description="profit share of an order's value")
    default_order_value: float = Field(
        60.0, gt=0, description="order value for visitors without an order of their own"
    )
    min_expected_value: float = Field(
        0.0, description="contact only when the expected value is above this, in currency"
    )
    suppression_days: float = Field(
        7.0, ge=0, description="no contact this many days after a purchase"
    )
    campaign_salt: str = Field(
        "propensity", min_length=1, description="change it to draw a new holdout"
    )

    def fingerprint(self) -> str:
        """Eight hex digits that change with any setting: part of a scoring run's id."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:8]


@dataclass(frozen=True)
class RoutingInputs:
    """One entry per visitor in every array (same length, same order).

    ``days_since_last_purchase`` and ``order_value`` are NaN where unknown (no purchase in the
    feature lookback; no order of their own).
    """

    visitor_id: VisitorIds
    score: FloatArray
    email_status: npt.NDArray[np.object_]
    ads_consent: npt.NDArray[np.object_]
    days_since_last_purchase: FloatArray
    order_value: FloatArray


@dataclass(frozen=True)
class RoutedBatch:
    route: npt.NDArray[np.int8]  # codes into ROUTES
    reason: npt.NDArray[np.int8]  # codes into REASONS
    expected_value: FloatArray
    #: EV of the last visitor the ad budget admitted when the budget bound, else None. The
    #: real-time path admits ads at or above it.
    ads_ev_floor: float | None
    #: The channel route each visitor was sent to or held out from (codes EMAIL, ADS; NONE
    #: for the rest): what measuring the run compares a holdout with.
    channel: npt.NDArray[np.int8] | None = None

    def route_names(self) -> npt.NDArray[np.str_]:
        return np.asarray(ROUTES)[self.route]

    def channel_names(self) -> npt.NDArray[np.object_]:
        """``email_remarketing`` / ``ad_retargeting`` per visitor, None where neither."""
        names = np.array([None, ROUTES[EMAIL], ROUTES[ADS], None], dtype=object)
        codes = self.channel if self.channel is not None else np.zeros(len(self.route), np.int8)
        return names[codes]

    def reason_names(self) -> npt.NDArray[np.str_]:
        return np.asarray(REASONS)[self.reason]


@dataclass(frozen=True)
class RoutingDecision:
    route: Route
    reason: Reason
    expected_value: float


def expected_values(
    inputs: RoutingInputs, policy: RoutingPolicy, lift: LiftModel | None = None
) -> tuple[FloatArray, FloatArray]:
    """(email EV, ads EV) per visitor, in currency."""
    value = np.where(np.isnan(inputs.order_value), policy.default_order_value, inputs.order_value)
    values = [
        incremental_probability(inputs.score, name, channel.incremental_lift, lift)
        * value
        * policy.margin
        - channel.cost_per_contact
        for name, channel in (("email", policy.email), ("ads", policy.ads))
    ]
    return values[0], values[1]


def _ads_admitted(
    candidate: npt.NDArray[np.bool_],
    ads_ev: FloatArray,
    policy: RoutingPolicy,
    ads_ev_floor: float | None,
) -> tuple[npt.NDArray[np.bool_], float | None]:
    """Which ad candidates the budget admits, highest EV first, and the floor it implies."""
    if ads_ev_floor is not None:
        return candidate & (ads_ev >= ads_ev_floor), ads_ev_floor
    budget = policy.ad_budget
    limit = len(ads_ev) if budget.max_audience is None else budget.max_audience
    cost = policy.ads.cost_per_contact
    if budget.max_spend is not None and cost > 0:
        affordable = budget.max_spend / cost * (1 + 1e-12)  # float noise, not a contact
        if affordable < limit:
            limit = int(np.floor(affordable))
    ranked = np.flatnonzero(candidate)
    if len(ranked) <= limit:
        return candidate, None
    ranked = ranked[np.argsort(-ads_ev[ranked], kind="stable")]
    admitted = np.zeros_like(candidate)
    admitted[ranked[:limit]] = True
    floor = float(ads_ev[ranked[limit - 1]]) if limit > 0 else float("inf")
    return admitted, floor


def route_batch(
    inputs: RoutingInputs,
    policy: RoutingPolicy,
    *,
    ads_ev_floor: float | None = None,
    lift: LiftModel | None = None,
) -> RoutedBatch:
    """Decide every visitor of a run (see the module docstring for the rules).

    ``ads_ev_floor`` replaces the budget's ranking by a fixed EV floor (the real-time path);
    ``lift``: the measured lift (None: the policy's assumed one).
    """
    email_ev, ads_ev = expected_values(inputs, policy, lift)
    email_ok = np.asarray(inputs.email_status == EmailStatus.SUBSCRIBED.value, dtype=bool)
    ads_ok = np.asarray(inputs.ads_consent == AdsConsent.GRANTED.value, dtype=bool)
    suppressed = np.asarray(inputs.days_since_last_purchase < policy.suppression_days, dtype=bool)
    threshold = policy.min_expected_value
    email_worth = email_ok & (email_ev > threshold)
    ads_worth = ads_ok & (ads_ev > threshold)
    prefers_ads = ads_worth & ~(email_worth & (email_ev >= ads_ev))
    open_ = ~suppressed
    admitted, floor = _ads_admitted(prefers_ads & open_, ads_ev, policy, ads_ev_floor)
    to_ads = admitted
    to_email = open_ & email_worth & ~to_ads
    best_allowed = np.maximum(
        np.where(email_ok, email_ev, -np.inf), np.where(ads_ok, ads_ev, -np.inf)
    )
    route = np.full(len(email_ev), NONE, dtype=np.int8)
    reason = np.full(len(email_ev), BELOW_THRESHOLD, dtype=np.int8)
    value = np.where(np.isfinite(best_allowed), best_allowed, 0.0)
    reason[open_ & prefers_ads & ~to_ads & ~to_email] = BUDGET_EXHAUSTED
    value = np.where(reason == BUDGET_EXHAUSTED, ads_ev, value)
    reason[suppressed] = RECENT_PURCHASE
    reason[~(email_ok | ads_ok)] = NO_CONSENT
    draws = holdout_draws(inputs.visitor_id, policy.campaign_salt)
    held = (to_email & (draws["email"] < policy.email.holdout_share)) | (
        to_ads & (draws["ads"] < policy.ads.holdout_share)
    )
    route[to_email] = EMAIL
    route[to_ads] = ADS
    reason[to_email | to_ads] = EXPECTED_VALUE
    value = np.where(to_email, email_ev, np.where(to_ads, ads_ev, value))
    channel = route.copy()
    route[held] = HOLDOUT
    reason[held] = HELD_OUT
    return RoutedBatch(route, reason, np.asarray(value, dtype=np.float64), floor, channel)


def route(
    visitor_id: str,
    score: float,
    *,
    email_status: str,
    ads_consent: str,
    days_since_last_purchase: float | None,
    order_value: float | None,
    policy: RoutingPolicy,
    ads_ev_floor: float | None = None,
    lift: LiftModel | None = None,
) -> RoutingDecision:
    """One visitor, now: ``route_batch`` on a single row (so the two cannot drift apart)."""
    inputs = RoutingInputs(
        visitor_id=[visitor_id],
        score=np.array([score], dtype=np.float64),
        email_status=np.array([email_status], dtype=object),
        ads_consent=np.array([ads_consent], dtype=object),
        days_since_last_purchase=np.array(
            [np.nan if days_since_last_purchase is None else days_since_last_purchase]
        ),
        order_value=np.array([np.nan if order_value is None else order_value]),
    )
    # A single visitor never competes for the budget; without a floor from a batch run the
    # budget is taken as not binding.
    floor = ads_ev_floor if ads_ev_floor is not None else -np.inf
    decided = route_batch(inputs, policy, ads_ev_floor=floor, lift=lift)
    return RoutingDecision(
        route=ROUTES[int(decided.route[0])],
        reason=REASONS[int(decided.reason[0])],
        expected_value=float(decided.expected_value[0]),
    )


def budget_spend(decided: RoutedBatch, policy: RoutingPolicy) -> float:
    """Ad spend of a run: visitors actually sent to ads times the cost per contact."""
    return float(np.count_nonzero(decided.route == ADS)) * policy.ads.cost_per_contact
