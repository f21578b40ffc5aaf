"""A lift fit that ranks email by a registered uplift model: the batch job loads the model
through MLflow and values each visitor by the band of its prediction; the real-time path
decides the same; a model that cannot be loaded leaves the channel to its score bands."""

from __future__ import annotations

import functools
import shutil

import lightgbm as lgb
import numpy as np
import orjson
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from contract.uplift import UpliftScorer, uplift_spec
from features.definitions import FEATURE_COLUMNS, FeatureConfig
from features.ingest.contacts import read_contacts
from serving.api.realtime import Contact, RealTimeScorer, Visitor
from serving.batch.job import default_as_of, model_features, score_visitors
from serving.model.registry import load_registered_model
from serving.model.uplift import load_uplift_model
from serving.policy.lift import BandLift, ChannelLift, LiftModel
from serving.store.sqlite import SqliteScoreStore
from serving.testing import TINY_FEATURES, tiny_training_data
from tests.integration.serving.world import World, settings, world


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    return world(tmp_path_factory)


def _register_uplift(shared: World) -> str:
    """A two-model uplift on the tiny features whose uplift grows with ``n_events``."""
    import mlflow

    from training.tracking import Store, client_for, experiment_id, log_uplift_model

    features, _ = tiny_training_data(rows=4000, seed=1)
    rng = np.random.default_rng(2)
    treated = rng.random(len(features)) < 1 / (1 + np.exp(-(features[:, 0] - 8)))
    control = rng.random(len(features)) < 0.1
    models = [
        lgb.LGBMClassifier(n_estimators=20, num_leaves=4, verbose=-1).fit(features, label)
        for label in (treated, control)
    ]
    spec = uplift_spec("email", TINY_FEATURES, FeatureConfig(), {"run": "test"})
    example = pd.DataFrame(features[:3], columns=list(TINY_FEATURES))
    store = Store(shared.tracking_uri, (shared.root / "artifacts").as_uri())
    client = client_for(store)
    with mlflow.start_run(experiment_id=experiment_id(client, store, "serving-tests")):
        return log_uplift_model(
            spec,
            models[0].booster_.model_to_string(),
            models[1].booster_.model_to_string(),
            example,
            "propensity-uplift-email",
        )


def _band(lo: float, hi: float, delta: float) -> BandLift:
    return BandLift(lo, hi, delta, delta - 1e-4, delta + 1e-4, 1000, 1000, delta, 0.0)


def _lift(uri: str, edge: float) -> LiftModel:
    """Email worthless by score band, worth it only in the upper band of the uplift model."""
    by_score = ChannelLift((_band(0.0, 1.0, -0.01),))
    by_uplift = ChannelLift((_band(-1.0, edge, -0.01), _band(edge, 1.0, 0.05)), uri)
    return LiftModel("liftuplift1", {"email": by_score}, ("run",), uplift={"email": by_uplift})


def test_a_channel_ranked_by_uplift_is_valued_by_its_prediction_on_every_path(
    shared: World,
) -> None:
    uri = _register_uplift(shared)
    paths = shared.paths("uplift-serving")
    loaded = load_registered_model(
        "models:/propensity@champion", tracking_uri=paths.tracking_uri,
        cache_dir=paths.model_cache_dir, predictor="booster",
    )  # fmt: skip
    as_of = default_as_of(paths.lake_dir)
    features = model_features(paths.lake_dir, as_of, loaded)
    assert isinstance(features, pl.LazyFrame)
    frame = features.collect().sort("visitor_id")
    matrix = frame.select(pl.col(c).cast(pl.Float64) for c in FEATURE_COLUMNS).to_numpy()
    load = functools.partial(
        load_uplift_model, tracking_uri=paths.tracking_uri, cache_dir=paths.model_cache_dir
    )
    scorer = load(uri)
    position = [FEATURE_COLUMNS.index(c) for c in scorer.feature_columns]
    predicted = scorer.uplift(matrix[:, position])
    edge = float(np.median(predicted))

    summary = score_visitors(settings(), paths, as_of=as_of, model=loaded, lift=_lift(uri, edge))
    scores = pl.read_parquet(summary.files["scores"]).sort("visitor_id")
    assert scores.get_column("visitor_id").equals(frame.get_column("visitor_id"))
    emailed = (
        ((scores["channel"] == "email_remarketing") & (scores["reason"] != "exploration"))
        .fill_null(False)
        .to_numpy()
    )
    assert emailed.any()
    # Only visitors in the uplift model's upper band are worth an email.
    assert np.all(predicted[emailed] >= edge)
    run = SqliteScoreStore.open(paths.sqlite_path).current_run()
    assert run is not None and run.lift is not None and "email" in run.lift["uplift"]

    # The real-time path, on the same features, decides each visitor as the run did.
    realtime = RealTimeScorer(loaded, settings(), load)
    contacts = frame.select("visitor_id").join(
        read_contacts(paths.lake_dir), on="visitor_id", how="left"
    )
    sample = list(range(0, frame.height, max(1, frame.height // 60)))
    email, ads = (
        contacts.get_column(c).fill_null("unknown") for c in ("email_status", "ads_consent")
    )
    visitors = [
        Visitor(str(contacts["visitor_id"][i]), as_of, as_of, Contact(email[i], ads[i]))
        for i in sample
    ]
    assert any(emailed[i] for i in sample)  # the parity covers uplift-valued visitors
    records = realtime.score_many(visitors, matrix[sample], run=run, explain=False)
    for i, record in zip(sample, records, strict=True):
        answer = orjson.loads(record)
        assert answer["route"] == scores["route"][i]
        assert answer["expected_value"] == pytest.approx(scores["expected_value"][i])


def test_an_uplift_model_that_cannot_be_loaded_leaves_the_score_bands(shared: World) -> None:
    paths = shared.paths("uplift-missing")
    missing = _lift("models:/propensity-uplift-email/999", 0.0)
    summary = score_visitors(settings(), paths, lift=missing)
    scores = pl.read_parquet(summary.files["scores"])
    # By score band email is worth nothing: nobody is emailed but to explore.
    routed = scores.filter(
        (pl.col("route") == "email_remarketing") & (pl.col("reason") != "exploration")
    )
    assert routed.is_empty()
    run = SqliteScoreStore.open(paths.sqlite_path).current_run()
    assert run is not None and run.lift is not None and run.lift["uplift"] == {}


def test_the_uplift_artifact_scores_alike_through_mlflow_pyfunc(shared: World) -> None:
    """The registered model is a real MLflow model: pyfunc predicts what serving predicts."""
    import mlflow

    uri = _register_uplift(shared)
    paths = shared.paths("uplift-pyfunc")
    served: UpliftScorer = load_uplift_model(
        uri, tracking_uri=paths.tracking_uri, cache_dir=paths.model_cache_dir
    )
    features, _ = tiny_training_data(rows=50, seed=5)
    frame = pd.DataFrame(features, columns=list(TINY_FEATURES))
    mlflow.set_tracking_uri(shared.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(uri)
    assert np.allclose(np.asarray(pyfunc.predict(frame)), served.uplift(features))


@pytest.mark.spark
@pytest.mark.slow
def test_spark_predicts_the_uplift_on_its_executors_as_the_embedded_engine(
    shared: World,
) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH (install openjdk-17-jre-headless)")
    uri = _register_uplift(shared)
    lift = _lift(uri, 0.0)
    embedded = score_visitors(settings(), shared.paths("uplift-polars"), lift=lift)
    on_spark = score_visitors(
        settings(), shared.paths("uplift-spark"), engine="spark", as_of=embedded.as_of, lift=lift
    )
    columns = ["visitor_id", "route", "reason", "expected_value"]
    left = pl.read_parquet(embedded.files["scores"]).select(columns).sort("visitor_id")
    right = pl.read_parquet(on_spark.files["scores"]).select(columns).sort("visitor_id")
    assert embedded.extra["uplift_models"] == on_spark.extra["uplift_models"] == {"email": uri}
    assert_frame_equal(left, right, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
