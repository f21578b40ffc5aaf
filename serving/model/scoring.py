"""Features in, scores and decisions out: the one path shared by the batch job, the
real-time API and the benchmark (the API calls it with one row).

Input grain: one row per visitor, feature columns in ``FEATURE_COLUMNS`` order (float64,
NaN where null), so the routing inputs (``days_since_last_purchase``, ``avg_order_value``)
are read by name whatever features the model itself uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.definitions import FEATURE_COLUMNS
from serving.model.spec import Matrix, ScoringModel
from serving.policy.holdout import VisitorIds
from serving.policy.lift import LiftModel
from serving.policy.routing import RoutedBatch, RoutingInputs, RoutingPolicy, route_batch

#: The features routing reads besides the score (days since purchase, order value).
ROUTING_FEATURES = ("days_since_last_purchase", "avg_order_value")
_DAYS_SINCE_PURCHASE, _ORDER_VALUE = (FEATURE_COLUMNS.index(n) for n in ROUTING_FEATURES)
DECILE_QUANTILES = tuple(q / 10 for q in range(1, 10))


@dataclass(frozen=True)
class ScoredBatch:
    score: npt.NDArray[np.float64]
    routed: RoutedBatch


def model_columns(model: ScoringModel) -> npt.NDArray[np.intp]:
    """Positions in ``FEATURE_COLUMNS`` of the model's inputs, in the model's order."""
    position = {name: i for i, name in enumerate(FEATURE_COLUMNS)}
    missing = [n for n in model.feature_names if n not in position]
    if missing:
        raise ValueError(f"the model needs features that are not computed: {missing}")
    return np.array([position[n] for n in model.feature_names], dtype=np.intp)


def model_inputs(features: Matrix, columns: npt.NDArray[np.intp]) -> Matrix:
    """The model's input matrix; no copy when the model reads every feature in order."""
    if len(columns) == features.shape[1] and np.array_equal(columns, np.arange(len(columns))):
        return np.ascontiguousarray(features)
    return np.ascontiguousarray(features[:, columns])


def score_features(
    model: ScoringModel,
    features: Matrix,
    columns: npt.NDArray[np.intp] | None = None,
    *,
    threads: int = 1,
) -> npt.NDArray[np.float64]:
    """Calibrated probabilities for every row of ``features`` (``FEATURE_COLUMNS`` order)."""
    columns = model_columns(model) if columns is None else columns
    inputs = model_inputs(features, columns)
    return np.asarray(model.predict_proba(inputs, threads=threads), dtype=np.float64)


def route_scored(
    score: npt.NDArray[np.float64],
    features: Matrix,
    *,
    visitor_id: VisitorIds,
    email_status: npt.NDArray[np.object_],
    ads_consent: npt.NDArray[np.object_],
    policy: RoutingPolicy,
    ads_ev_floor: float | None = None,
    lift: LiftModel | None = None,
    predicted_uplift: dict[str, npt.NDArray[np.float64]] | None = None,
) -> RoutedBatch:
    """The routing decisions of scored visitors, routing inputs read from their features."""
    return route_visitors(
        score,
        features[:, _DAYS_SINCE_PURCHASE],
        features[:, _ORDER_VALUE],
        visitor_id=visitor_id,
        email_status=email_status,
        ads_consent=ads_consent,
        policy=policy,
        ads_ev_floor=ads_ev_floor,
        lift=lift,
        predicted_uplift=predicted_uplift,
    )


def route_visitors(
    score: npt.NDArray[np.float64],
    days_since_last_purchase: npt.NDArray[np.float64],
    order_value: npt.NDArray[np.float64],
    *,
    visitor_id: VisitorIds,
    email_status: npt.NDArray[np.object_],
    ads_consent: npt.NDArray[np.object_],
    policy: RoutingPolicy,
    ads_ev_floor: float | None = None,
    lift: LiftModel | None = None,
    predicted_uplift: dict[str, npt.NDArray[np.float64]] | None = None,
) -> RoutedBatch:
    """The routing step of every path: scores, the ``ROUTING_FEATURES`` and contactability
    in, decisions out (the batch job passes columns, ``route_scored`` a feature matrix);
    ``predicted_uplift``: per channel the uplift model's prediction, where ``lift`` ranks the
    channel by one (``serving.model.uplift``)."""
    inputs = RoutingInputs(
        visitor_id=visitor_id,
        score=score,
        email_status=email_status,
        ads_consent=ads_consent,
        days_since_last_purchase=days_since_last_purchase,
        order_value=order_value,
        predicted_uplift=predicted_uplift,
    )
    return route_batch(inputs, policy, ads_ev_floor=ads_ev_floor, lift=lift)


def routing_inputs(
    score: npt.NDArray[np.float64],
    features: Matrix,
    *,
    visitor_id: VisitorIds,
    email_status: npt.NDArray[np.object_],
    ads_consent: npt.NDArray[np.object_],
) -> RoutingInputs:
    """What routing needs of scored visitors, read from their features (``FEATURE_COLUMNS``)."""
    return RoutingInputs(
        visitor_id=visitor_id,
        score=score,
        email_status=email_status,
        ads_consent=ads_consent,
        days_since_last_purchase=features[:, _DAYS_SINCE_PURCHASE],
        order_value=features[:, _ORDER_VALUE],
    )


def score_and_route(
    model: ScoringModel,
    features: Matrix,
    *,
    visitor_id: VisitorIds,
    email_status: npt.NDArray[np.object_],
    ads_consent: npt.NDArray[np.object_],
    policy: RoutingPolicy,
    ads_ev_floor: float | None = None,
    lift: LiftModel | None = None,
    columns: npt.NDArray[np.intp] | None = None,
    threads: int = 1,
    predicted_uplift: dict[str, npt.NDArray[np.float64]] | None = None,
) -> ScoredBatch:
    """Calibrated probabilities and routing decisions for every row of ``features``."""
    score = score_features(model, features, columns, threads=threads)
    routed = route_scored(
        score,
        features,
        visitor_id=visitor_id,
        email_status=email_status,
        ads_consent=ads_consent,
        policy=policy,
        ads_ev_floor=ads_ev_floor,
        lift=lift,
        predicted_uplift=predicted_uplift,
    )
    return ScoredBatch(score, routed)


def decile_cuts(score: npt.NDArray[np.float64]) -> tuple[float, ...]:
    """Ascending score quantiles at 10%..90% of a run (empty run: no cuts)."""
    if len(score) == 0:
        return ()
    return tuple(float(q) for q in np.quantile(score, DECILE_QUANTILES))


def decile_of(score: npt.NDArray[np.float64], cuts: tuple[float, ...]) -> npt.NDArray[np.int64]:
    """1 for the top 10% of the run the cuts come from, ..., 10 for the bottom 10%."""
    if not cuts:
        return np.zeros(len(score), dtype=np.int64)
    return 10 - np.searchsorted(np.asarray(cuts), score, side="right").astype(np.int64)
