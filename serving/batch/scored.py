"""A run's visitors scored, explained and routed: the features of every visitor in, the
frame the run writes out (score, decile, route, reason, expected value, top features).

Scores come in chunks (``ServingSettings.batch_chunk_rows``) on every core; routing ranks the
whole run at once (deciles, the ad budget), on the same ``route_batch`` as every other path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from features.definitions import FEATURE_COLUMNS
from serving.model.registry import LoadedModel
from serving.model.scoring import (
    ROUTING_FEATURES,
    decile_cuts,
    decile_of,
    model_columns,
    route_visitors,
    score_features,
)
from serving.model.spec import top_contributions
from serving.model.uplift import UPLIFT_COLUMN, predicted_uplift, uplift_of_frame
from serving.policy.lift import LiftModel
from serving.settings import ServingSettings

if TYPE_CHECKING:
    from contract.uplift import UpliftScorer

Progress = Callable[[int], None]


def _score_chunks(
    loaded: LoadedModel, matrix: np.ndarray, chunk: int, progress: Progress
) -> np.ndarray:
    columns = model_columns(loaded.model)
    parts = []
    for start in range(0, len(matrix), chunk):
        rows = matrix[start : start + chunk]
        parts.append(score_features(loaded.model, rows, columns, threads=os.cpu_count() or 1))
        progress(min(chunk, len(matrix) - start))
    return np.concatenate(parts) if parts else np.zeros(0)


def _top_features(loaded: LoadedModel, matrix: np.ndarray, k: int, chunk: int) -> pl.Series:
    """Per visitor, the ``k`` features that moved the score most, as a list of structs."""
    names = np.asarray(loaded.model.feature_names, dtype=object)
    columns = model_columns(loaded.model)
    index_parts, value_parts = [], []
    for start in range(0, len(matrix), chunk):
        rows = np.ascontiguousarray(matrix[start : start + chunk][:, columns])
        order, values = top_contributions(loaded.model, rows, k, threads=os.cpu_count() or 1)
        index_parts.append(order)
        value_parts.append(values)
    order = np.concatenate(index_parts) if index_parts else np.zeros((0, k), dtype=np.int64)
    values = np.concatenate(value_parts) if value_parts else np.zeros((0, k))
    flat = pl.DataFrame(
        {
            "row": np.repeat(np.arange(len(order)), order.shape[1]),
            "feature": names[order.ravel()].astype(str),
            "contribution": values.ravel(),
        }
    )
    nested = flat.group_by("row", maintain_order=True).agg(
        pl.struct("feature", "contribution").alias("top_features")
    )
    return nested.get_column("top_features")


def scored_frame(
    features: pl.DataFrame,
    contacts: pl.DataFrame,
    loaded: LoadedModel,
    settings: ServingSettings,
    progress: Progress,
    lift: LiftModel | None = None,
    uplift_models: dict[str, UpliftScorer] | None = None,
) -> tuple[pl.DataFrame, np.ndarray, float | None, dict[str, float]]:
    """Score every visitor of ``features`` (and predict the uplift of the channels in
    ``uplift_models``), then route the run (``routed_frame``)."""
    matrix = np.ascontiguousarray(
        features.select(pl.col(c).cast(pl.Float64) for c in FEATURE_COLUMNS).to_numpy(),
        dtype=np.float64,
    )
    score = _score_chunks(loaded, matrix, settings.batch_chunk_rows, progress)
    scored = features.select("visitor_id", *ROUTING_FEATURES).with_columns(
        pl.Series("score", score),
        *(
            pl.Series(UPLIFT_COLUMN.format(channel=channel), values)
            for channel, values in (predicted_uplift(uplift_models or {}, matrix) or {}).items()
        ),
    )
    if settings.batch_contributions and settings.top_features:
        scored = scored.with_columns(
            _top_features(loaded, matrix, settings.top_features, settings.batch_chunk_rows)
        )
    return routed_frame(scored, contacts, settings, lift)


def routed_frame(
    scored: pl.DataFrame,
    contacts: pl.DataFrame,
    settings: ServingSettings,
    lift: LiftModel | None = None,
) -> tuple[pl.DataFrame, np.ndarray, float | None, dict[str, float]]:
    """Route a whole run: ``scored`` holds ``visitor_id``, ``score``, ``ROUTING_FEATURES`` and
    optionally ``top_features`` and the channels' uplift predictions (``UPLIFT_COLUMN``); the
    output frame, the decile cuts, the ads EV floor and the holdout share per channel.
    ``lift``: the measured lift to value contacts with (None: the policy's assumed one)."""
    visitors = scored.join(contacts, on="visitor_id", how="left", maintain_order="left")
    visitors = visitors.with_columns(
        pl.col("email_status").fill_null("unknown"), pl.col("ads_consent").fill_null("unknown")
    )
    score = visitors.get_column("score").to_numpy()
    days, order_value = (
        visitors.get_column(c).cast(pl.Float64).to_numpy() for c in ROUTING_FEATURES
    )
    routed = route_visitors(
        score,
        days,
        order_value,
        visitor_id=visitors.get_column("visitor_id"),
        email_status=visitors.get_column("email_status").to_numpy(),
        ads_consent=visitors.get_column("ads_consent").to_numpy(),
        policy=settings.routing,
        lift=lift,
        predicted_uplift=uplift_of_frame(visitors),
    )
    cuts = decile_cuts(score)
    top = visitors.get_column("top_features") if "top_features" in visitors.columns else None
    out = visitors.select("visitor_id", "email_status", "ads_consent").with_columns(
        pl.Series("score", score),
        pl.Series("decile", decile_of(score, cuts)),
        pl.Series("route", routed.route_names().astype(str)),
        pl.Series("channel", routed.channel_names().tolist(), dtype=pl.String),
        pl.Series("reason", routed.reason_names().astype(str)),
        pl.Series("expected_value", routed.expected_value),
        top if top is not None else pl.lit(None).alias("top_features"),
    )
    return out, np.asarray(cuts), routed.ads_ev_floor, routed.holdout_shares or {}
