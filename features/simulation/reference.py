"""The three yardsticks of simulated data at every snapshot time, in one frame."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import polars as pl

from features.simulation.as_of import as_of_purchase_probability, last_seen
from features.simulation.config import SimulationConfig
from features.simulation.ideal import ideal_purchase_probability, observed_histories
from features.simulation.truth import true_purchase_probability


def reference_probabilities(
    truth: pl.DataFrame,
    events: pl.DataFrame | pl.LazyFrame,
    moments: Iterable[datetime],
    horizon: timedelta,
    config: SimulationConfig | None = None,
) -> pl.DataFrame:
    """``visitor_id, p_true, p_as_of, [p_ideal,] as_of``: one row per visitor of ``truth`` and
    snapshot time ``as_of`` in ``moments``.

    ``p_true`` knows everything (``truth``), ``p_as_of`` infers churn but knows rate and intent
    (``as_of``), ``p_ideal`` (only with the simulation's ``config``, which holds the prior)
    infers all three from the events (``ideal``). The last two are null for visitors without a
    session event before ``as_of``, whom no event-based model scores.
    """
    frames = []
    for moment in moments:
        frame = true_purchase_probability(truth, moment, horizon).join(
            as_of_purchase_probability(truth, last_seen(events, moment), moment, horizon),
            on="visitor_id",
            how="left",
        )
        if config is not None:
            ideal = ideal_purchase_probability(
                observed_histories(events, moment), config, moment, horizon
            )
            frame = frame.join(ideal, on="visitor_id", how="left")
        frames.append(frame.with_columns(pl.lit(moment).alias("as_of")))
    return pl.concat(frames)
