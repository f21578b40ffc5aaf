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
EV (email on a tie). Ads are rationed by the budget, largest *gain* first: what the ad adds
over the visitor's fallback (the email EV where email is worth it, else nothing), so the
budget buys the ads that add the most profit, not ads for subscribers an email would have
served nearly as well while an anonymous visitor of slightly lower ad EV goes without. A
visitor who misses the budget falls back to email when email is worth it, else
``none``/``budget_exhausted``. Then a
deterministic share of each channel's audience is held out: ``holdout``/``holdout`` (a fixed
share, or one sized from the channel's ``min_detectable_effect``). Last, exploration: of the
visitors no channel is worth it for, a deterministic ``exploration_share`` per consented
channel is sent anyway and as many are held out beside them (reason ``exploration``), so the
lift is measured at every score; ``uncertain_exploration_share`` instead where the channel
would be worth it at the upper end of its measured lift's interval (where the policy may be
wrong, it looks harder, so one unlucky holdout cannot switch a channel off for good);
explored ads are paid from the ad budget first. Email is explored as well among the visitors
the ad budget ran out for (they would otherwise be contacted by nobody).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.events.schema import AdsConsent, EmailStatus
from serving.policy.holdout import VisitorIds, holdout_draws, holdout_share_for
from serving.policy.lift import LiftModel, incremental_probability, plausible_probability

Route = Literal["none", "email_remarketing", "ad_retargeting", "holdout"]
Reason = Literal[
    "no_consent",
    "recent_purchase",
    "below_threshold",
    "budget_exhausted",
    "expected_value",
    "holdout",
    "exploration",
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
    "exploration",
)
NONE, EMAIL, ADS, HOLDOUT = range(4)
NO_CONSENT, RECENT_PURCHASE, BELOW_THRESHOLD, BUDGET_EXHAUSTED, EXPECTED_VALUE, HELD_OUT = range(6)
EXPLORATION = 6
#: Salt suffix of the exploration draws: independent of the holdout's.
EXPLORATION_SALT = ":exploration"
FloatArray = npt.NDArray[np.float64]


class ChannelPolicy(BaseModel):
    """A channel's cost, its assumed lift, and how much of it is kept for measurement.

    A contact costs ``cost_per_contact`` when set, else ``cpm / 1000 × impressions_per_contact``
    (the way ad platforms price a reach: by the thousand impressions, several per person).
    """

    model_config = ConfigDict(frozen=True)

    cost_per_contact: float | None = Field(
        None, ge=0, description="cost of one contact, in currency (overrides cpm when set)"
    )
    cpm: float | None = Field(
        None, ge=0, description="cost per thousand impressions, in currency (ads)"
    )
    impressions_per_contact: float = Field(
        1.0, gt=0, description="impressions one contact buys over the outcome window (ads)"
    )
    incremental_lift: float = Field(
        ge=0, description="assumed relative rise in purchase probability caused by a contact"
    )
    holdout_share: float = Field(
        0.05, ge=0, le=1, description="share of the channel's audience kept out to measure it"
    )
    min_detectable_effect: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="when set, the holdout share is sized per run so that the holdout detects "
        "an absolute effect this large (0.002 = 0.2 pp; 5% two-sided, 80% power), within "
        "max_holdout_share; holdout_share is then unused",
    )
    max_holdout_share: float = Field(
        0.5, gt=0, le=0.5, description="the largest share min_detectable_effect may hold out"
    )
    exploration_share: float = Field(
        0.01,
        ge=0,
        le=0.25,
        description="share of the consented visitors the policy does not send to the channel "
        "that are sent anyway, and as many held out beside them, so the channel's lift is "
        "measured at every score, not only where it is used today",
    )
    uncertain_exploration_share: float = Field(
        0.2,
        ge=0,
        le=0.5,
        description="the exploration share instead, for visitors the channel is not worth it "
        "for at its learned lift but would be at the upper end of the lift's interval: "
        "where the policy may be wrong, it looks harder",
    )

    @model_validator(mode="after")
    def _priced(self) -> ChannelPolicy:
        if self.cost_per_contact is None and self.cpm is None:
            raise ValueError("set cost_per_contact or cpm")
        return self

    @property
    def unit_cost(self) -> float:
        """What one contact costs, in currency."""
        if self.cost_per_contact is not None:
            return self.cost_per_contact
        assert self.cpm is not None  # _priced
        return self.cpm / 1000 * self.impressions_per_contact


class AdBudget(BaseModel):
    """Per run; None means no limit of that kind."""

    model_config = ConfigDict(frozen=True)

    max_audience: int | None = Field(None, ge=0, description="visitors sent to ads at most")
    max_spend: float | None = Field(None, ge=0, description="ad spend at most, in currency")


class RoutingPolicy(BaseModel):
    """Business configuration of routing: changed on a business schedule, never retrained."""

    model_config = ConfigDict(frozen=True)

    #: The defaults and their sources: docs/routing.md ("Costs and effects, and where the
    #: defaults come from").
    #: Email tests every visitor it is unsure of (half sent, half held out): a contact costs
    #: next to nothing, and one unlucky holdout must not switch the channel off for good.
    email: ChannelPolicy = ChannelPolicy(
        cost_per_contact=0.002, incremental_lift=0.05, uncertain_exploration_share=0.5
    )
    ads: ChannelPolicy = ChannelPolicy(cpm=1.53, impressions_per_contact=8, incremental_lift=0.10)
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
    #: Per channel (``email``, ``ads``), each visitor's own ``Δp`` where it is known (an
    #: uplift model's estimate, or the simulator's truth); it replaces the lift curve there.
    uplift: dict[str, FloatArray] | None = None
    #: Per channel, each visitor's prediction by the uplift model the lift fit ranks the
    #: channel by (``LiftModel.uplift``); the channel is valued by score band without it.
    predicted_uplift: dict[str, FloatArray] | None = None


@dataclass(frozen=True)
class RoutedBatch:
    route: npt.NDArray[np.int8]  # codes into ROUTES
    reason: npt.NDArray[np.int8]  # codes into REASONS
    expected_value: FloatArray
    #: Ad gain (ads EV over the visitor's fallback, see the module docstring) of the last
    #: visitor the ad budget admitted when the budget bound, else None. The real-time path
    #: admits ads whose gain is at or above it.
    ads_ev_floor: float | None
    #: The channel route each visitor was sent to or held out from (codes EMAIL, ADS; NONE
    #: for the rest): what measuring the run compares a holdout with.
    channel: npt.NDArray[np.int8] | None = None
    #: Each channel's holdout share in this run (fixed, or sized from its detectable effect).
    holdout_shares: dict[str, float] | None = None

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
    inputs: RoutingInputs,
    policy: RoutingPolicy,
    lift: LiftModel | None = None,
    *,
    plausible: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """(email EV, ads EV) per visitor, in currency; ``plausible``: at the upper end of the
    measured lift's interval instead of its estimate (how much a contact may still be worth)."""
    value = np.where(np.isnan(inputs.order_value), policy.default_order_value, inputs.order_value)
    own = inputs.uplift or {}
    ranked = inputs.predicted_uplift or {}
    effect = plausible_probability if plausible else incremental_probability
    values = [
        (
            own[name]
            if name in own
            else effect(inputs.score, name, channel.incremental_lift, lift, ranked.get(name))
        )
        * value
        * policy.margin
        - channel.unit_cost
        for name, channel in (("email", policy.email), ("ads", policy.ads))
    ]
    return values[0], values[1]


def _ads_admitted(
    candidate: npt.NDArray[np.bool_],
    ads_gain: FloatArray,
    policy: RoutingPolicy,
    ads_ev_floor: float | None,
    reserved: int = 0,
) -> tuple[npt.NDArray[np.bool_], float | None]:
    """Which ad candidates the budget admits, largest gain over their fallback first, and
    the floor it implies; ``reserved`` contacts of the budget are already spoken for
    (exploration)."""
    if ads_ev_floor is not None:
        return candidate & (ads_gain >= ads_ev_floor), ads_ev_floor
    limit = max(0, ads_limit(policy, len(ads_gain)) - reserved)
    ranked = np.flatnonzero(candidate)
    if len(ranked) <= limit:
        return candidate, None
    ranked = ranked[np.argsort(-ads_gain[ranked], kind="stable")]
    admitted = np.zeros_like(candidate)
    admitted[ranked[:limit]] = True
    floor = float(ads_gain[ranked[limit - 1]]) if limit > 0 else float("inf")
    return admitted, floor


def ads_limit(policy: RoutingPolicy, visitors: int) -> int:
    """How many ad contacts the budget buys, at most ``visitors``."""
    budget = policy.ad_budget
    limit = visitors if budget.max_audience is None else min(visitors, budget.max_audience)
    cost = policy.ads.unit_cost
    if budget.max_spend is not None and cost > 0:
        affordable = budget.max_spend / cost * (1 + 1e-12)  # float noise, not a contact
        if affordable < limit:
            limit = int(np.floor(affordable))
    return limit


def _holdout_share(
    channel: ChannelPolicy, audience: npt.NDArray[np.bool_], score: FloatArray
) -> float:
    """The channel's holdout share in this run: ``holdout_share``, or sized from its
    ``min_detectable_effect`` for the audience's size and mean score."""
    if channel.min_detectable_effect is None:
        return channel.holdout_share
    n = int(np.count_nonzero(audience))
    baseline = float(score[audience].mean()) if n else 0.0
    return holdout_share_for(
        channel.min_detectable_effect, baseline, n, max_share=channel.max_holdout_share
    )


def with_holdout_shares(policy: RoutingPolicy, shares: Mapping[str, float]) -> RoutingPolicy:
    """``policy`` with the holdout shares a batch run used, fixed: how the real-time path,
    which sees one visitor and no audience, holds out exactly the visitors the run did."""
    update = {
        name: getattr(policy, name).model_copy(
            update={"holdout_share": float(shares[name]), "min_detectable_effect": None}
        )
        for name in ("email", "ads")
        if name in shares
    }
    return policy.model_copy(update=update) if update else policy


@dataclass(frozen=True)
class _Exploration:
    """Per channel: the explored visitors sent anyway (``treated``) and held out beside them."""

    email_treated: npt.NDArray[np.bool_]
    email_control: npt.NDArray[np.bool_]
    ads_treated: npt.NDArray[np.bool_]
    ads_control: npt.NDArray[np.bool_]


def _exploration_shares(
    inputs: RoutingInputs, policy: RoutingPolicy, lift: LiftModel | None
) -> tuple[FloatArray, FloatArray]:
    """Per visitor and channel: the exploration share, raised to the uncertain one where the
    channel would be worth it at the upper end of its lift's interval."""
    email_plausible, ads_plausible = expected_values(inputs, policy, lift, plausible=True)
    threshold = policy.min_expected_value
    return tuple(  # type: ignore[return-value]
        np.where(
            plausible > threshold, channel.uncertain_exploration_share, channel.exploration_share
        )
        for plausible, channel in ((email_plausible, policy.email), (ads_plausible, policy.ads))
    )


def _exploration(
    visitor_id: VisitorIds,
    nowhere: npt.NDArray[np.bool_],
    email_ok: npt.NDArray[np.bool_],
    ads_ok: npt.NDArray[np.bool_],
    shares: tuple[FloatArray, FloatArray],
    policy: RoutingPolicy,
    ads_room: int | None,
) -> _Exploration:
    """Randomised contacts among the visitors the policy sends nowhere: a draw under the
    visitor's exploration share of the channel (``shares``: email, ads) is sent, one between
    it and twice it is held out; email is explored first, ads among the rest. ``ads_room``:
    ad contacts the budget allows (lowest draws first), None for no limit."""
    none = np.zeros(len(nowhere), dtype=bool)
    email_share, ads_share = shares
    if not nowhere.any() or not (email_share.any() or ads_share.any()):
        return _Exploration(none, none, none, none)
    draws = holdout_draws(visitor_id, policy.campaign_salt + EXPLORATION_SALT)
    email = nowhere & email_ok & (draws["email"] < 2 * email_share)
    email_treated = email & (draws["email"] < email_share)
    ads = nowhere & ads_ok & ~email & (draws["ads"] < 2 * ads_share)
    ads_treated = ads & (draws["ads"] < ads_share)
    if ads_room is not None and np.count_nonzero(ads_treated) > ads_room:
        chosen = np.flatnonzero(ads_treated)
        chosen = chosen[np.argsort(draws["ads"][chosen], kind="stable")][ads_room:]
        ads_treated = ads_treated.copy()
        ads_treated[chosen] = False
        ads = ads & ~np.isin(np.arange(len(ads)), chosen)
    return _Exploration(email_treated, email & ~email_treated, ads_treated, ads & ~ads_treated)


def _explored_email_beyond_budget(
    explored: _Exploration,
    visitor_id: VisitorIds,
    exhausted: npt.NDArray[np.bool_],
    email_share: FloatArray,
    policy: RoutingPolicy,
) -> _Exploration:
    """``explored`` with email explored among ``exhausted`` too (the same draws and shares
    as among the visitors no channel is worth it for)."""
    if not exhausted.any():
        return explored
    draws = holdout_draws(visitor_id, policy.campaign_salt + EXPLORATION_SALT)["email"]
    arm = exhausted & (draws < 2 * email_share)
    treated = arm & (draws < email_share)
    return _Exploration(
        explored.email_treated | treated,
        explored.email_control | (arm & ~treated),
        explored.ads_treated,
        explored.ads_control,
    )


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
    shares = _exploration_shares(inputs, policy, lift)
    explored = _exploration(
        inputs.visitor_id,
        open_ & ~email_worth & ~ads_worth,
        email_ok,
        ads_ok,
        shares,
        policy,
        None if ads_ev_floor is not None else ads_limit(policy, len(ads_ev)),
    )
    # What an ad adds over the visitor's fallback: the email they would get, or nothing.
    ads_gain = ads_ev - np.where(email_worth, email_ev, 0.0)
    admitted, floor = _ads_admitted(
        prefers_ads & open_,
        ads_gain,
        policy,
        ads_ev_floor,
        reserved=int(np.count_nonzero(explored.ads_treated)),
    )
    to_ads = admitted
    to_email = open_ & email_worth & ~to_ads
    # A visitor the ad budget ran out for, with email not worth it, is contacted by nobody:
    # email is explored there too, or a wrong email lift on ads' best visitors (the ones
    # with the most intent) would never be found out.
    explored = _explored_email_beyond_budget(
        explored,
        inputs.visitor_id,
        open_ & prefers_ads & ~to_ads & ~email_worth & email_ok,
        shares[0],
        policy,
    )
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
    email_share = _holdout_share(policy.email, to_email, inputs.score)
    ads_share = _holdout_share(policy.ads, to_ads, inputs.score)
    held = (to_email & (draws["email"] < email_share)) | (to_ads & (draws["ads"] < ads_share))
    route[to_email] = EMAIL
    route[to_ads] = ADS
    reason[to_email | to_ads] = EXPECTED_VALUE
    value = np.where(to_email, email_ev, np.where(to_ads, ads_ev, value))
    channel = route.copy()
    route[held] = HOLDOUT
    reason[held] = HELD_OUT
    for code, treated, control, ev in (
        (EMAIL, explored.email_treated, explored.email_control, email_ev),
        (ADS, explored.ads_treated, explored.ads_control, ads_ev),
    ):
        arm = treated | control
        route[treated], route[control] = code, HOLDOUT
        channel[arm] = code
        reason[arm] = EXPLORATION
        value = np.where(arm, ev, value)
    return RoutedBatch(
        route,
        reason,
        np.asarray(value, dtype=np.float64),
        floor,
        channel,
        {"email": email_share, "ads": ads_share},
    )


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
    """Ad spend of a run: visitors actually sent to ads (exploration included) times the cost
    per contact."""
    return float(np.count_nonzero(decided.route == ADS)) * policy.ads.unit_cost
