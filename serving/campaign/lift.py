"""Learn the lift of each channel from the holdouts of past runs. Pure: units in, a
``LiftModel`` (``serving.policy.lift``) out.

Per channel, the units (visitors routed to it, treated; and visitors held out from it,
control) are cut into score bands at the quantiles of their scores, as many as the control
group can fill (``min_control_per_band``). The fit is hierarchical, in three steps:

1. **The channel's level**: the effect over all its units, shrunk toward the policy's
   assumption (``incremental_lift`` × the mean score) with a prior standard deviation of
   ``max(|assumption|, channel_prior_sd)``. A few hundred held-out visitors pin it down.
2. **Each band** is shrunk toward that level, with a prior standard deviation of
   ``max(|level|, prior_sd_floor)``: a band may differ from the channel by about the level
   itself. Where a band's own holdout is small it follows the channel's measured level, not
   the assumption; with a large one, its own measurement. (Not toward the assumption's
   shape, ``∝ score``: Hillstrom's effect does not grow with propensity, and scaling a noisy
   level by the score amplifies its noise most in the top band.)

3. **The shape across bands**: the bands' priors under two shapes, *flat* (each band's
   prior is the level) and *proportional* (the level times the band's mean score over the
   channel's, the assumption's shape), are weighed by how well each predicts the bands'
   measurements, from ``proportional_prior``; each band is the average of its two
   posteriors, and within it ``Δp`` follows the proportional share of the slope
   (``serving.policy.lift``). A small holdout cannot rank visitors band by band; then the
   prior belief ranks them partly by score, and a large one settles the shape (Hillstrom's
   flat e-mail effect, the simulator's rising one).

In each band and overall, the measured effect is the difference of the treated and control
purchase rates, with the variance of a difference of two proportions (each rate add-one
smoothed, so an empty arm has a finite variance). A band without control units keeps its
prior.

Explored visitors (``explored``: sent or held out at random where the policy contacts
nobody) and policy-routed ones are randomised apart, with different treated shares, so each
effect is measured within each group and the two are combined by precision: pooling them
would compare mostly-explored controls with mostly-routed treated visitors.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from serving.policy.lift import (
    CHANNELS,
    BandLift,
    ChannelLift,
    LiftModel,
    incremental_probability,
)
from serving.policy.routing import ROUTES, RoutingPolicy

#: Channel names in units (route names) and in the lift model.
_CHANNEL_OF_ROUTE = {ROUTES[1]: "email", ROUTES[2]: "ads"}


class LiftSettings(BaseModel):
    """How ``propensity lift`` learns each channel's lift (``PROPENSITY_LIFT__…``)."""

    model_config = ConfigDict(frozen=True)

    bands: int = Field(5, ge=1, le=50, description="score bands per channel at most")
    min_control_per_band: int = Field(
        100, ge=1, description="held-out visitors a band needs (fewer bands when fewer)"
    )
    channel_prior_sd: float = Field(
        0.01,
        gt=0,
        description="smallest prior standard deviation of a channel's overall effect "
        "(absolute, 0.01 = 1 pp): how far the measurement may move the policy's assumption",
    )
    prior_sd_floor: float = Field(
        0.001,
        gt=0,
        description="smallest prior standard deviation of a band's effect around the "
        "channel's measured level (absolute, 0.001 = 0.1 pp)",
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="level of the bands' intervals")
    proportional_prior: float = Field(
        0.5,
        ge=0,
        le=1,
        description="prior belief that a channel's effect grows in proportion to the score "
        "(else it is flat across scores); the bands' measurements update it per channel",
    )
    shape_score_quantile: float = Field(
        0.95,
        gt=0,
        le=1,
        description="within a band, Δp follows the shape up to this quantile of the band's "
        "scores and no further (no extrapolation past the measured)",
    )
    rank_by_uplift: bool = Field(
        True,
        description="where a per-visitor uplift model ranks a channel's newest run better than "
        "the lift curve (Qini, trained on the older runs), rank the channel by it (the model "
        "is registered in MLflow; each band's effect is still measured on the holdouts)",
    )
    use: bool = Field(
        True,
        description="score with the latest fitted lift (propensity lift), when there is one; "
        "false: with the policy's assumed lift",
    )


def fit_lift(
    units: pl.DataFrame,
    policy: RoutingPolicy,
    settings: LiftSettings,
    runs: Sequence[str] = (),
) -> LiftModel:
    """A lift per channel from ``units`` (``channel`` as route names, ``treated``, ``score``,
    ``converted``); a channel without units is left out (it keeps the assumption)."""
    channels = {}
    for route, name in _CHANNEL_OF_ROUTE.items():
        part = units.filter(pl.col("channel") == route)
        if part.height:
            assumed = getattr(policy, name).incremental_lift
            channels[name] = _channel_lift(part, assumed, settings)
    prior = {name: getattr(policy, name).incremental_lift for name in CHANNELS}
    return _identified(LiftModel("", channels, tuple(runs), settings.confidence, prior))


def _identified(model: LiftModel) -> LiftModel:
    """``model`` with its id: a hash of everything it decides with."""
    body = model.to_dict()
    body.pop("fit_id")
    fit_id = "lift" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    return replace(model, fit_id=fit_id)


def lift_by_key(
    units: pl.DataFrame, channel: str, key: str, policy: RoutingPolicy, settings: LiftSettings
) -> ChannelLift:
    """``channel``'s lift by band of the units' ``key`` column (an uplift model's
    out-of-fold prediction) instead of their score; the prior is the same as by score."""
    route = next(r for r, name in _CHANNEL_OF_ROUTE.items() if name == channel)
    part = units.filter(pl.col("channel") == route)
    return _channel_lift(part, getattr(policy, channel).incremental_lift, settings, key)


def ranked_by_uplift(model: LiftModel, uplift: dict[str, ChannelLift]) -> LiftModel:
    """``model`` with the channels ``uplift`` ranks by an uplift model (a new fit id)."""
    return _identified(replace(model, uplift=uplift))


def _edges(score: np.ndarray, control: int, settings: LiftSettings) -> np.ndarray:
    """Inner band edges: score quantiles, as many bands as the control can fill."""
    bands = max(1, min(settings.bands, control // settings.min_control_per_band))
    edges = np.quantile(score, np.linspace(0, 1, bands + 1)[1:-1]) if bands > 1 else []
    edges = np.unique(np.asarray(edges, dtype=np.float64))
    # A band starts at its edge; an edge at the lowest score (ties) would leave one empty.
    return edges[edges > score.min()] if score.size else edges


def _channel_lift(
    part: pl.DataFrame, assumed: float, settings: LiftSettings, key: str = "score"
) -> ChannelLift:
    """Bands cut on ``key`` (the score, or an uplift prediction); the prior from the score."""
    score = part.get_column("score").to_numpy()
    ranking = part.get_column(key).to_numpy().astype(np.float64)
    treated = part.get_column("treated").to_numpy().astype(bool)
    converted = part.get_column("converted").to_numpy().astype(np.float64)
    explored = (
        part.get_column("explored").fill_null(False).to_numpy().astype(bool)
        if "explored" in part.columns
        else np.zeros(part.height, dtype=bool)
    )
    z = float(stats.norm.ppf(0.5 + settings.confidence / 2))

    def strata(cell: np.ndarray) -> list[tuple[Arm, ...]]:
        return [
            tuple(
                (float(converted[group & arm].sum()), int((group & arm).sum()))
                for arm in (treated, ~treated)
            )
            for group in (cell & explored, cell & ~explored)
        ]

    everyone = np.ones(part.height, dtype=bool)
    overall_prior = assumed * float(score.mean())
    level = _band(0.0, 1.0, overall_prior, strata(everyone), settings.channel_prior_sd, z).delta
    edges = _edges(ranking, int((~treated).sum()), settings)
    band = np.searchsorted(edges, ranking, side="right")
    # Score bands span [0, 1]; uplift predictions may be negative: the outer bands are open.
    outer = (0.0, 1.0) if key == "score" else (-1.0, 1.0)
    bounds = [outer[0], *edges.tolist(), outer[1]]
    cells = [band == k for k in range(len(edges) + 1)]
    # A band may differ from the channel's level (or its shape's) by about the level itself.
    spread = max(abs(level), settings.prior_sd_floor)
    if key != "score":
        return ChannelLift(
            tuple(
                _band(bounds[k], bounds[k + 1], level, strata(cell), spread, z)
                for k, cell in enumerate(cells)
            )
        )
    measured = [
        (bounds[k], bounds[k + 1], strata(cell), score[cell]) for k, cell in enumerate(cells)
    ]
    return _shaped(measured, level, float(score.mean()), spread, settings, z)


Arm = tuple[float, int]
#: A band's bounds, strata (``strata`` in ``_channel_lift``) and its visitors' scores.
MeasuredBand = tuple[float, float, list[tuple[Arm, ...]], np.ndarray]


def _shaped(
    measured: list[MeasuredBand],
    level: float,
    mean_score: float,
    spread: float,
    settings: LiftSettings,
    z: float,
) -> ChannelLift:
    """Bands under two shapes of the channel's effect, averaged by how well each explains
    the bands' measurements: *flat* (every band's prior is the level) and *proportional*
    (a band's prior is the level times its mean score over the channel's). The holdouts are
    rarely large enough to rank visitors band by band; between them the two shapes still do,
    by what the evidence says of each (``settings.proportional_prior`` before any)."""
    means = [
        float(scores.mean()) if scores.size else (lo + hi) / 2 for lo, hi, _, scores in measured
    ]
    shape = [m / mean_score if mean_score > 0 else 1.0 for m in means]
    evidence = 0.0  # log likelihood ratio, proportional against flat
    for (_, _, strata, _), ratio in zip(measured, shape, strict=True):
        measurement = _measurement(strata)
        if measurement is None:
            continue
        observed, precision = measurement
        # Judged on the measurement's own noise: the spread bands may have around a shape
        # would leave the shapes alike.
        sd = math.sqrt(1 / precision + settings.prior_sd_floor**2)
        for sign, prior in ((1, level * ratio), (-1, level)):
            evidence += sign * float(stats.norm.logpdf(observed, prior, sd))
    weight = 0.0 if mean_score <= 0 else _believed(settings.proportional_prior, evidence)
    bands = []
    for (lo, hi, strata, scores), ratio, mean in zip(measured, shape, means, strict=True):
        flat = _band(lo, hi, level, strata, spread, z)
        grows = _band(lo, hi, level * ratio, strata, spread, z)
        delta = (1 - weight) * flat.delta + weight * grows.delta
        second = [((b.high - b.delta) / z) ** 2 + b.delta**2 for b in (flat, grows)]
        sd = math.sqrt(max((1 - weight) * second[0] + weight * second[1] - delta**2, 0.0))
        high = float(np.quantile(scores, settings.shape_score_quantile)) if scores.size else hi
        bands.append(
            replace(
                flat,
                delta=delta,
                low=delta - z * sd,
                high=delta + z * sd,
                prior=(1 - weight) * flat.prior + weight * grows.prior,
                score_mean=mean,
                score_high=high,
                slope=weight * grows.delta / mean if mean > 0 else 0.0,
            )
        )
    return ChannelLift(tuple(bands), proportional=weight)


def _believed(prior: float, evidence: float) -> float:
    """The posterior probability of a hypothesis held with ``prior`` before evidence with
    log likelihood ratio ``evidence`` for it; a certain prior (0 or 1) stays certain."""
    if prior in (0.0, 1.0):
        return prior
    odds = math.log(prior / (1 - prior)) + evidence
    return 1 / (1 + math.exp(-odds)) if odds >= 0 else math.exp(odds) / (1 + math.exp(odds))


def _measurement(strata: list[tuple[Arm, ...]]) -> tuple[float, float] | None:
    """The effect measured on a band's strata (explored and policy-routed visitors, each
    randomised on its own with its own treated share) and its precision: each stratum's
    difference of rates, combined by precision; None without both arms in any stratum."""
    weights, differences = [], []
    for (bought_t, treated), (bought_c, control) in strata:
        if treated == 0 or control == 0:
            continue
        rate_t, rate_c = (bought_t + 1) / (treated + 2), (bought_c + 1) / (control + 2)
        weights.append(1 / (rate_t * (1 - rate_t) / treated + rate_c * (1 - rate_c) / control))
        differences.append(bought_t / treated - bought_c / control)
    if not weights:
        return None
    precision = float(sum(weights))
    return float(np.dot(weights, differences)) / precision, precision


def _band(
    lo: float,
    hi: float,
    prior: float,
    strata: list[tuple[Arm, ...]],
    sd_floor: float,
    z: float,
) -> BandLift:
    """A band's effect: its measurement (``_measurement``) shrunk toward the prior."""
    lo, hi, prior = float(lo), float(hi), float(prior)
    prior_var = max(abs(prior), sd_floor) ** 2
    n_t = sum(int(arms[0][1]) for arms in strata)
    n_c = sum(int(arms[1][1]) for arms in strata)
    measurement = _measurement(strata)
    if measurement is None:
        sd = math.sqrt(prior_var)
        return BandLift(lo, hi, prior, prior - z * sd, prior + z * sd, n_t, n_c, None, prior)
    observed, precision = measurement
    weight = precision / (precision + 1 / prior_var)
    delta = weight * observed + (1 - weight) * prior
    sd = math.sqrt(1 / (precision + 1 / prior_var))
    return BandLift(lo, hi, delta, delta - z * sd, delta + z * sd, n_t, n_c, observed, prior)


@dataclass(frozen=True)
class LiftGate:
    """Whether a refitted lift replaces the live one, judged out of time: a candidate fitted
    without the newest run against the live fit, on how well each predicts what the newest
    run's holdout measured (``prediction_error``; lower is better)."""

    promoted: bool
    reason: str
    newest_run: str | None = None
    candidate_error: float | None = None
    live_error: float | None = None


def prediction_error(
    model: LiftModel | None, units: pl.DataFrame, bands: LiftModel, policy: RoutingPolicy
) -> float | None:
    """How far ``model``'s ``Δp`` (None: the policy's assumption) is from the effect
    ``units`` measure, in the score bands of ``bands``: the mean over channels and bands with
    both arms of ``(predicted − measured)² / variance of the measurement``. None when no band
    has both arms."""
    errors = []
    for route, name in _CHANNEL_OF_ROUTE.items():
        part = units.filter(pl.col("channel") == route)
        if name not in bands.channels or part.is_empty():
            continue
        score = part.get_column("score").to_numpy()
        treated = part.get_column("treated").to_numpy().astype(bool)
        converted = part.get_column("converted").to_numpy().astype(np.float64)
        predicted = incremental_probability(
            score, name, getattr(policy, name).incremental_lift, model
        )
        for band in bands.channels[name].bands:
            inside = (score >= band.lo) & (score < band.hi) if band.hi < 1 else score >= band.lo
            n_t, n_c = int((inside & treated).sum()), int((inside & ~treated).sum())
            if n_t == 0 or n_c == 0:
                continue
            rate_t = float(converted[inside & treated].mean())
            rate_c = float(converted[inside & ~treated].mean())
            smooth_t = (converted[inside & treated].sum() + 1) / (n_t + 2)
            smooth_c = (converted[inside & ~treated].sum() + 1) / (n_c + 2)
            var = smooth_t * (1 - smooth_t) / n_t + smooth_c * (1 - smooth_c) / n_c
            guess = float(predicted[inside & treated].mean())
            errors.append((guess - (rate_t - rate_c)) ** 2 / var)
    return float(np.mean(errors)) if errors else None


def gate_lift(
    units: pl.DataFrame,
    live: LiftModel | None,
    policy: RoutingPolicy,
    settings: LiftSettings,
) -> LiftGate:
    """Judge a refit (see ``LiftGate``): promoted when there is no live fit or no earlier run
    to fit a candidate on, or when the candidate predicts the newest run at least as well as
    the live fit (the assumption, when none) does."""
    runs = sorted(units.get_column("run_id").unique().to_list()) if units.height else []
    if not runs:
        return LiftGate(False, "no run with its outcomes in")
    newest = runs[-1]
    if live is None:
        return LiftGate(True, "first fit", newest)
    if len(runs) == 1:
        return LiftGate(True, "one run only: nothing to judge a refit out of time on", newest)
    earlier = units.filter(pl.col("run_id") != newest)
    held = units.filter(pl.col("run_id") == newest)
    candidate = fit_lift(earlier, policy, settings, runs[:-1])
    candidate_error = prediction_error(candidate, held, candidate, policy)
    live_error = prediction_error(live, held, candidate, policy)
    if candidate_error is None or live_error is None:
        return LiftGate(True, f"{newest} has no holdout to judge on", newest)
    better = candidate_error <= live_error
    verdict = "predicts" if better else "does not predict"
    return LiftGate(
        better,
        f"the refit {verdict} {newest} as well as the live fit "
        f"(error {candidate_error:.3g} against {live_error:.3g})",
        newest,
        candidate_error,
        live_error,
    )
