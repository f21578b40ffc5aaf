"""Learn the lift of each channel from the holdouts of past runs. Pure: units in, a
``LiftModel`` (``serving.policy.lift``) out.

Per channel, the units (visitors routed to it, treated; and visitors held out from it,
control) are cut into score bands at the quantiles of their scores, as many as the control
group can fill (``min_control_per_band``). The fit is hierarchical, in two steps:

1. **The channel's level**: the effect over all its units, shrunk toward the policy's
   assumption (``incremental_lift`` × the mean score) with a prior standard deviation of
   ``max(|assumption|, channel_prior_sd)``. A few hundred held-out visitors pin it down.
2. **Each band** is shrunk toward the assumption's shape at the measured level (the
   assumption of the band × level / assumption overall; the level itself where the
   assumption is zero), with a prior standard deviation of ``max(|that prior|, |level|,
   prior_sd_floor)``: a band may differ from the shape by about the level itself. Where a band's own holdout is small it follows the level, not the
   assumption; with a large one, its own measurement.

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

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from serving.policy.lift import CHANNELS, BandLift, ChannelLift, LiftModel
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
    body = {"channels": {k: [b.__dict__ for b in v.bands] for k, v in channels.items()},
            "runs": list(runs), "prior": prior}  # fmt: skip
    fit_id = "lift" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    return LiftModel(fit_id, channels, tuple(runs), settings.confidence, prior)


def _edges(score: np.ndarray, control: int, settings: LiftSettings) -> np.ndarray:
    """Inner band edges: score quantiles, as many bands as the control can fill."""
    bands = max(1, min(settings.bands, control // settings.min_control_per_band))
    edges = np.quantile(score, np.linspace(0, 1, bands + 1)[1:-1]) if bands > 1 else []
    edges = np.unique(np.asarray(edges, dtype=np.float64))
    # A band starts at its edge; an edge at the lowest score (ties) would leave one empty.
    return edges[edges > score.min()] if score.size else edges


def _channel_lift(part: pl.DataFrame, assumed: float, settings: LiftSettings) -> ChannelLift:
    score = part.get_column("score").to_numpy()
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
    edges = _edges(score, int((~treated).sum()), settings)
    band = np.searchsorted(edges, score, side="right")
    bounds = [0.0, *edges.tolist(), 1.0]
    bands = []
    for k in range(len(edges) + 1):
        inside = band == k
        assumption = assumed * float(score[inside].mean()) if inside.any() else 0.0
        prior = assumption * level / overall_prior if overall_prior > 0 else level
        # A band may differ from the shape by about the channel's level.
        spread = max(abs(level), settings.prior_sd_floor)
        bands.append(_band(bounds[k], bounds[k + 1], prior, strata(inside), spread, z))
    return ChannelLift(tuple(bands))


Arm = tuple[float, int]


def _band(
    lo: float,
    hi: float,
    prior: float,
    strata: list[tuple[Arm, ...]],
    sd_floor: float,
    z: float,
) -> BandLift:
    """A band's effect from its strata (explored and policy-routed visitors, each randomised
    on its own with its own treated share): each stratum's difference of rates, combined by
    precision, then shrunk toward the prior."""
    lo, hi, prior = float(lo), float(hi), float(prior)
    prior_var = max(abs(prior), sd_floor) ** 2
    n_t = sum(int(arms[0][1]) for arms in strata)
    n_c = sum(int(arms[1][1]) for arms in strata)
    weights, differences = [], []
    for (bought_t, treated), (bought_c, control) in strata:
        if treated == 0 or control == 0:
            continue
        rate_t, rate_c = (bought_t + 1) / (treated + 2), (bought_c + 1) / (control + 2)
        weights.append(1 / (rate_t * (1 - rate_t) / treated + rate_c * (1 - rate_c) / control))
        differences.append(bought_t / treated - bought_c / control)
    if not weights:
        sd = math.sqrt(prior_var)
        return BandLift(lo, hi, prior, prior - z * sd, prior + z * sd, n_t, n_c, None, prior)
    precision = float(sum(weights))
    observed = float(np.dot(weights, differences)) / precision
    weight = precision / (precision + 1 / prior_var)
    delta = weight * observed + (1 - weight) * prior
    sd = math.sqrt(1 / (precision + 1 / prior_var))
    return BandLift(lo, hi, delta, delta - z * sd, delta + z * sd, n_t, n_c, observed, prior)
