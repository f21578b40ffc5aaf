"""Uplift models of a lift fit, loaded through the MLflow registry, and their predictions.

A lift fit may rank a channel's visitors by a per-visitor uplift model
(``serving.policy.lift``, ``LiftModel.uplift``). Every scoring path loads those models with
``usable_uplift`` and predicts with ``predicted_uplift`` on the same feature rows it scores,
so the batch job and the real-time API value a visitor alike. A model that cannot be loaded,
or that was trained on features computed otherwise than the champion's, is left out with a
warning: the channel is then valued by score band, never with inputs it was not trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from contract.uplift import UPLIFT_SPEC_FILE, UpliftScorer
from features.definitions import FEATURE_COLUMNS, FeatureConfig
from serving.model.registry import ModelUnavailable, download_version
from serving.policy.lift import LiftModel

log = logging.getLogger(__name__)
UpliftLoader = Callable[[str], UpliftScorer]
#: The column of a scored frame that carries a channel's uplift prediction.
UPLIFT_COLUMN = "uplift_{channel}"
CHANNELS = ("email", "ads")


def load_uplift_model(model_uri: str, *, tracking_uri: str | None, cache_dir: Path) -> UpliftScorer:
    """The registered uplift model ``models:/NAME/VERSION``."""
    folder = download_version(
        model_uri, tracking_uri=tracking_uri, cache_dir=cache_dir, marker=UPLIFT_SPEC_FILE
    )
    return UpliftScorer.from_directory(folder)


def usable_uplift(
    lift: LiftModel | None,
    load: UpliftLoader,
    feature_config: FeatureConfig,
    computed: Collection[str] = FEATURE_COLUMNS,
) -> tuple[LiftModel | None, dict[str, UpliftScorer]]:
    """``lift`` without the uplift rankings that cannot be used here, and the models of the
    rest: loaded, trained on features computed with ``feature_config``, reading only
    ``computed`` features."""
    if lift is None or not lift.uplift:
        return lift, {}
    scorers: dict[str, UpliftScorer] = {}
    for channel, uri in lift.uplift_models().items():
        try:
            scorer = load(uri)
        except (ModelUnavailable, OSError, ValueError, KeyError) as problem:
            log.warning("uplift model %s not loaded (%s): %s valued by score band", uri,
                        problem, channel)  # fmt: skip
            continue
        missing = set(scorer.feature_columns) - set(computed)
        if scorer.feature_config != feature_config or missing:
            log.warning(
                "uplift model %s was trained on other features than the champion's: %s "
                "valued by score band", uri, channel,
            )  # fmt: skip
            continue
        scorers[channel] = scorer
    return replace(lift, uplift={c: lift.uplift[c] for c in scorers}), scorers


def predicted_uplift(
    scorers: dict[str, UpliftScorer], features: npt.NDArray[np.float64]
) -> dict[str, npt.NDArray[np.float64]] | None:
    """Per channel, each row's uplift prediction (``features`` in ``FEATURE_COLUMNS`` order)."""
    if not scorers:
        return None
    position = {name: i for i, name in enumerate(FEATURE_COLUMNS)}
    return {
        channel: scorer.uplift(features[:, [position[c] for c in scorer.feature_columns]])
        for channel, scorer in scorers.items()
    }


def uplift_of_frame(scored: pl.DataFrame) -> dict[str, npt.NDArray[np.float64]] | None:
    """The predictions a scored frame carries (``UPLIFT_COLUMN``; null: not predicted)."""
    found = {}
    for channel in CHANNELS:
        column = UPLIFT_COLUMN.format(channel=channel)
        if column in scored.columns and scored.get_column(column).null_count() < scored.height:
            found[channel] = scored.get_column(column).cast(pl.Float64).to_numpy()
    return found or None
