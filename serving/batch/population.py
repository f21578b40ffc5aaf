"""The lake's visitors scored as of a moment, as the routing policy sees them: what the policy
curves (``serving.policy.curves``) are computed on."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from features.batch import collect
from features.definitions import FEATURE_COLUMNS
from features.ingest.contacts import read_contacts
from serving.batch.job import model_features
from serving.model.registry import LoadedModel
from serving.model.scoring import routing_inputs, score_features
from serving.policy.routing import RoutingInputs


def scored_routing_inputs(lake_dir: Path, model: LoadedModel, as_of: datetime) -> RoutingInputs:
    """The lake's visitors active before ``as_of``, scored by ``model``, as routing inputs."""
    features = collect(model_features(lake_dir, as_of, model))
    visitors = features.select("visitor_id").join(
        read_contacts(lake_dir), on="visitor_id", how="left"
    )
    matrix = np.ascontiguousarray(
        features.select(pl.col(c).cast(pl.Float64) for c in FEATURE_COLUMNS).to_numpy()
    )
    return routing_inputs(
        score_features(model.model, matrix),
        matrix,
        visitor_id=visitors.get_column("visitor_id"),
        email_status=visitors.get_column("email_status").fill_null("unknown").to_numpy(),
        ads_consent=visitors.get_column("ads_consent").fill_null("unknown").to_numpy(),
    )
