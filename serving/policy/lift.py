"""How much a contact raises a visitor's purchase probability: the lift the routing policy
values contacts with. Pure: scores in, absolute incremental probabilities out.

Without a measurement, the policy's assumption: ``Δp = incremental_lift × score`` (a relative
lift of the channel's ``incremental_lift``). With a ``LiftModel`` fitted on the holdouts of
past runs (``serving.campaign.lift``), ``Δp`` is the fitted effect of the visitor's score
band, shrunk toward that assumption where the holdout was small. A channel the model does not
cover keeps the assumption.

Within a score band, ``Δp`` follows the fit's belief in the channel's *shape*
(``ChannelLift.proportional``): flat across scores (as Hillstrom's e-mail effect is), or
growing in proportion to the score (as the assumption has it). A band's ``slope`` is that
belief times the proportional shape's slope, so with a single band, or bands too noisy to
tell the shapes apart, visitors are still ranked partly by their score; the slope stops at
``score_high`` (a high percentile of the band's scores): no extrapolation past the measured.

Where a per-visitor uplift model ranked a channel's visitors better than the score did, on a
run it had not seen (``propensity lift``), the fit also holds that channel's lift by band of
the uplift model's prediction (``LiftModel.uplift``): a visitor whose prediction is known is
valued with its band's measured effect. The model only ranks; the effect of each band is
measured on the holdouts, as for score bands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
CHANNELS: tuple[str, ...] = ("email", "ads")


@dataclass(frozen=True)
class BandLift:
    """The effect of a contact in one score band ``[lo, hi)``: the posterior mean and
    interval of ``Δp``, the measurement behind it and the prior it was shrunk toward."""

    lo: float
    hi: float
    delta: float
    low: float
    high: float
    treated: int
    control: int
    observed: float | None
    prior: float
    #: Within the band: ``Δp(s) = delta + slope × (min(s, score_high) − score_mean)``; the
    #: mean and a high percentile of the band's scores. Fits older than shapes: flat.
    score_mean: float | None = None
    score_high: float | None = None
    slope: float = 0.0

    def within(self, score: FloatArray, value: float) -> FloatArray:
        """``value`` (the band's delta or an end of its interval) at each score."""
        if self.score_mean is None or self.slope == 0.0:
            return np.full(score.shape, value)
        high = self.score_high if self.score_high is not None else self.hi
        return value + self.slope * (np.minimum(score, high) - self.score_mean)


@dataclass(frozen=True)
class ChannelLift:
    """A channel's lift by score band, bands ascending and adjacent; by band of an uplift
    model's prediction instead when ``uplift_model`` is set."""

    bands: tuple[BandLift, ...]
    #: The registered uplift model (``models:/NAME/VERSION``) whose prediction the bands are
    #: cut on; None: the score.
    uplift_model: str | None = None
    #: Posterior probability that the effect grows in proportion to the score within the
    #: channel (else it is flat); None: not fitted with shapes.
    proportional: float | None = None

    def at(self, score: npt.ArrayLike) -> FloatArray:
        """``Δp`` for each score: its band's, along the band's slope (the outer bands extend
        to 0 and 1)."""
        return self._of_band(score, lambda band: band.delta)

    def upper(self, score: npt.ArrayLike) -> FloatArray:
        """The upper end of each score's band interval: how large ``Δp`` may still be."""
        return self._of_band(score, lambda band: band.high)

    def _of_band(self, score: npt.ArrayLike, value: Callable[[BandLift], float]) -> FloatArray:
        given = np.asarray(score, dtype=np.float64)
        scores = given.reshape(-1)
        edges = np.array([band.lo for band in self.bands[1:]], dtype=np.float64)
        index = np.searchsorted(edges, scores, side="right")
        result = np.empty(scores.shape, dtype=np.float64)
        for k, band in enumerate(self.bands):
            inside = index == k
            result[inside] = band.within(scores[inside], value(band))
        return result.reshape(given.shape)


@dataclass(frozen=True)
class LiftModel:
    """A fitted lift per channel, with where it came from."""

    fit_id: str
    channels: dict[str, ChannelLift]
    runs: tuple[str, ...] = ()
    confidence: float = 0.95
    prior: dict[str, float] = field(default_factory=dict)
    #: Per channel where an uplift model out-ranked the score: the lift by its prediction.
    uplift: dict[str, ChannelLift] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LiftModel:
        def channels(part: dict[str, Any]) -> dict[str, ChannelLift]:
            return {
                name: ChannelLift(
                    tuple(BandLift(**band) for band in lift["bands"]),
                    lift.get("uplift_model"),
                    lift.get("proportional"),
                )
                for name, lift in part.items()
            }

        return cls(
            fit_id=str(raw["fit_id"]),
            channels=channels(raw["channels"]),
            runs=tuple(raw.get("runs", ())),
            confidence=float(raw.get("confidence", 0.95)),
            prior=dict(raw.get("prior", {})),
            uplift=channels(raw.get("uplift", {})),
        )

    def uplift_models(self) -> dict[str, str]:
        """Channel -> the uplift model its visitors are ranked by."""
        return {
            name: lift.uplift_model
            for name, lift in self.uplift.items()
            if lift.uplift_model is not None
        }


def incremental_probability(
    score: npt.ArrayLike,
    channel: str,
    assumed_lift: float,
    lift: LiftModel | None,
    predicted: npt.ArrayLike | None = None,
) -> FloatArray:
    """``Δp`` of contacting each visitor through ``channel`` (see the module docstring);
    ``predicted``: each visitor's uplift prediction, where the fit ranks the channel by one."""
    if lift is not None and predicted is not None and channel in lift.uplift:
        return lift.uplift[channel].at(predicted)
    if lift is not None and channel in lift.channels:
        return lift.channels[channel].at(score)
    return np.asarray(score, dtype=np.float64) * assumed_lift


def plausible_probability(
    score: npt.ArrayLike,
    channel: str,
    assumed_lift: float,
    lift: LiftModel | None,
    predicted: npt.ArrayLike | None = None,
) -> FloatArray:
    """The largest ``Δp`` the evidence leaves plausible for each visitor: the upper end of
    the measured band interval; the assumption itself where nothing is measured."""
    if lift is not None and predicted is not None and channel in lift.uplift:
        return lift.uplift[channel].upper(predicted)
    if lift is not None and channel in lift.channels:
        return lift.channels[channel].upper(score)
    return np.asarray(score, dtype=np.float64) * assumed_lift
