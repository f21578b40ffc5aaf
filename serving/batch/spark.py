"""Scores and explanations computed where the features are: on Spark executors.

``propensity score --engine spark`` builds the features on Spark (``features.batch``, the
same definitions as the embedded path) and hands them here. ``mapInPandas`` ships the model's
scoring spec (the booster text and calibrator, what ``serving.model.spec`` reads from the
registered artifact) to every executor, which scores its partitions with
``serving.model.scoring.score_features`` and, when asked, picks the top contributing features
(LightGBM ``pred_contrib``, TreeSHAP: the expensive part of a batch run). Only what routing
needs comes back to the driver: visitor id, score, the two routing inputs and the top
features. Routing itself ranks the whole run (deciles, the ad budget), so it runs once, on
the driver, with the same ``route_batch`` as every other path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from contract.uplift import UpliftScorer
from features.definitions import FEATURE_COLUMNS
from serving.model.scoring import ROUTING_FEATURES, model_columns, model_inputs, score_features
from serving.model.spec import SpecModel, top_contributions
from serving.model.uplift import CHANNELS as UPLIFT_CHANNELS
from serving.model.uplift import UPLIFT_COLUMN, predicted_uplift

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame as SparkDataFrame

_SCHEMA = ", ".join(
    [
        "visitor_id string",
        "score double",
        *(f"{name} double" for name in ROUTING_FEATURES),
        "top_feature array<string>",
        "top_contribution array<double>",
        *(f"{UPLIFT_COLUMN.format(channel=channel)} double" for channel in UPLIFT_CHANNELS),
    ]
)
#: What an executor needs of an uplift model: its spec and the two booster texts.
UpliftParts = tuple[dict[str, Any], str, str]


def _partition_scorer(
    spec: dict[str, Any],
    booster_text: str | None,
    top_k: int,
    uplift_parts: dict[str, UpliftParts] | None = None,
) -> Any:  # Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]
    """The function each executor runs over its partitions (it captures only plain data)."""

    def score_partitions(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        model = SpecModel.from_parts(spec, booster_text, predictor="booster")
        uplift_models = {c: UpliftScorer(*parts) for c, parts in (uplift_parts or {}).items()}
        columns = model_columns(model)
        names = np.asarray(model.feature_names, dtype=object)
        for chunk in chunks:
            matrix = np.ascontiguousarray(
                chunk[list(FEATURE_COLUMNS)].astype("float64").to_numpy(), dtype=np.float64
            )
            out = pd.DataFrame(
                {
                    "visitor_id": chunk["visitor_id"].to_numpy(),
                    "score": score_features(model, matrix, columns),
                    **{name: chunk[name].astype("float64").to_numpy() for name in ROUTING_FEATURES},
                }
            )
            predicted = predicted_uplift(uplift_models, matrix) or {}
            for channel in UPLIFT_CHANNELS:
                out[UPLIFT_COLUMN.format(channel=channel)] = predicted.get(channel)
            if top_k and len(matrix):
                order, values = top_contributions(model, model_inputs(matrix, columns), top_k)
                out["top_feature"] = list(names[order])
                out["top_contribution"] = list(values)
            else:
                out["top_feature"] = None
                out["top_contribution"] = None
            yield out

    return score_partitions


def score_on_spark(
    features: SparkDataFrame,
    model: SpecModel,
    top_k: int,
    uplift_models: dict[str, UpliftScorer] | None = None,
) -> pl.DataFrame:
    """``visitor_id, score, days_since_last_purchase, avg_order_value, top_features`` (a list
    of ``{feature, contribution}``, null when ``top_k`` is 0) and the uplift predictions of
    the channels in ``uplift_models`` (``UPLIFT_COLUMN``, null for the others) of every
    visitor of ``features``, sorted by visitor id (a run's decisions must not depend on
    partitioning)."""
    spec, booster_text = model.parts()
    parts = {
        channel: (scorer.spec, scorer.treated_text, scorer.control_text)
        for channel, scorer in (uplift_models or {}).items()
    }
    scored = features.mapInPandas(
        _partition_scorer(spec, booster_text, top_k, parts), schema=_SCHEMA
    )
    frame = pl.from_arrow(scored.toArrow())
    assert isinstance(frame, pl.DataFrame)
    # Pairs of the two arrays, kept aligned by exploding them together.
    exploded = (
        frame.select("visitor_id", "top_feature", "top_contribution")
        .filter(pl.col("top_feature").is_not_null())
        .explode("top_feature", "top_contribution")
        .group_by("visitor_id", maintain_order=True)
        .agg(
            pl.struct(
                pl.col("top_feature").alias("feature"),
                pl.col("top_contribution").alias("contribution"),
            ).alias("top_features")
        )
    )
    return (
        frame.drop("top_feature", "top_contribution")
        .join(exploded, on="visitor_id", how="left")
        .sort("visitor_id")
    )
