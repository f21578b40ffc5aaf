"""Stored records match the public VisitorScore shape from both writers; deciles and the
logistic scoring spec behave as documented."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
from numpy.testing import assert_allclose

from contract.calibration import apply_calibrator
from contract.model import ModelContract
from features.definitions import FeatureConfig
from features.events.schema import ADS_CONSENTS, EMAIL_STATUSES
from serving.api.schemas import AdsConsent, EmailStatus, VisitorScore
from serving.model.scoring import decile_cuts, decile_of
from serving.model.spec import SpecModel
from serving.store.records import batch_records, real_time_record

AS_OF = datetime(2024, 3, 1, tzinfo=UTC)


def test_batch_and_real_time_records_validate() -> None:
    scored = pl.DataFrame(
        {
            "visitor_id": ["a", "b"],
            "score": [0.3, 0.01],
            "decile": [1, 0],
            "route": ["email_remarketing", "none"],
            "reason": ["expected_value", "no_consent"],
            "expected_value": [0.2, 0.0],
            "model_version": ["3", "3"],
            "as_of": [AS_OF, AS_OF],
            "scored_at": [AS_OF, AS_OF],
            "email_status": ["subscribed", "unknown"],
            "ads_consent": ["denied", "unknown"],
            "top_features": [[{"feature": "n_events", "contribution": 0.5}], None],
        }
    )
    records = batch_records(scored).get_column("record").to_list()
    first, second = (VisitorScore.model_validate_json(r) for r in records)
    assert first.as_of == AS_OF and first.top_features and first.source == "batch"
    assert second.decile is None and second.top_features is None
    online = VisitorScore.model_validate_json(
        real_time_record(
            visitor_id="a",
            score=0.2,
            decile=3,
            route="holdout",
            reason="holdout",
            expected_value=0.1,
            model_version="3",
            as_of=AS_OF,
            scored_at=AS_OF,
            email_status="pending",
            ads_consent="granted",
            top_features=None,
        )
    )
    assert online.source == "real_time"


def test_schema_literals_follow_the_event_schema() -> None:
    assert set(EmailStatus.__args__) == set(EMAIL_STATUSES)  # type: ignore[attr-defined]
    assert set(AdsConsent.__args__) == set(ADS_CONSENTS)  # type: ignore[attr-defined]


def test_deciles() -> None:
    score = np.linspace(0, 1, 1000)
    deciles = decile_of(score, decile_cuts(score))
    assert deciles[-1] == 1 and deciles[0] == 10
    assert np.all(np.bincount(deciles)[1:] == 100)
    assert decile_of(np.array([0.5]), ()).tolist() == [0]


def test_logistic_spec_and_calibrators() -> None:
    spec = {
        **ModelContract(feature_columns=("a", "b"), feature_config=FeatureConfig()).spec_fields(),
        "kind": "logistic",
        "feature_columns": ["a", "b"],
        "calibrator": {
            "method": "isotonic",
            "x": [-1.0, 1.0],
            "y": [0.1, 0.9],
            "floor": 0.2,
            "ceiling": 0.8,
        },
        "logistic": {
            "fill": [0.0, 1.0],
            "indicator_columns": [1],
            "mean": [0.0, 0.0, 0.0],
            "scale": [1.0, 1.0, 1.0],
            "coef": [1.0, -0.5, 0.25],
            "intercept": 0.1,
        },
    }
    model = SpecModel.from_parts(spec)
    features = np.array([[0.5, np.nan], [2.0, 3.0]])
    parts = model.contributions(features)
    assert_allclose(parts.sum(axis=1), model.raw_score(features))
    assert np.all((model.predict_proba(features) >= 0.2) & (model.predict_proba(features) <= 0.8))
    sigmoid = apply_calibrator(
        {"method": "sigmoid", "slope": 1.0, "intercept": 0.0}, np.array([0.0])
    )
    assert_allclose(sigmoid, [0.5])
