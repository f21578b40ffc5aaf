"""The model carries its feature definition: a model trained with any lookback, session timeout
and local time offset is scored with that configuration by every path. For the same visitor
and ``as_of``, the training snapshot's features, the batch job's (embedded and Spark), the
online path's after ``POST /v1/events`` and monitoring's agree; and a model that does not say
how its features were computed is never scored.

Each example trains a real model through ``propensity train``'s own path (``jobs.train``) on a
configuration drawn at random, far from the defaults, so that a path that fell back to the
default 30-day window, 30-minute sessions or UTC would disagree.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient
from numpy.testing import assert_allclose

from features.batch import collect
from features.definitions import FEATURE_COLUMNS, FeatureConfig
from features.snapshots import SnapshotConfig, build_snapshots
from features.testing import assert_features_close, feature_matrix
from propensity import jobs
from propensity.monitor import scored_population
from propensity.settings import Settings, SnapshotSettings
from serving.api.app import create_app
from serving.batch.job import model_features, score_visitors
from serving.model.registry import LoadedModel, ModelUnavailable, load_registered_model
from serving.model.scoring import model_columns
from serving.settings import ServingPaths
from serving.testing import simulated_lake
from tests.integration.serving.world import KEY, register_tiny_model
from tests.integration.serving.world import settings as serving_settings
from training.settings import TrainingSettings
from training.train import promote_challenger

pytestmark = pytest.mark.slow
#: Mid-afternoon, so that a local time offset moves events across hour and day boundaries.
AS_OF = datetime(2024, 2, 26, 13, 30, tzinfo=UTC)
EXAMPLES = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def feature_configs(draw: st.DrawFn) -> FeatureConfig:
    """Lookbacks of 3 to 21 days (the lake holds 60; shorter ones leave too few buyers to
    train on), sessions ended by 5 to 120 minutes of silence, local time 12 hours behind UTC
    to 14 ahead in quarter hours, never zero."""
    offset = draw(st.integers(-48, 56).filter(lambda q: q != 0))
    return FeatureConfig(
        lookback=timedelta(hours=draw(st.integers(3 * 24, 21 * 24))),
        session_timeout=timedelta(minutes=draw(st.integers(5, 120))),
        local_time_offset=timedelta(minutes=15 * offset),
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake_dir = tmp_path_factory.mktemp("contract-lake") / "lake"
    # About ten buyers a week among the visitors of a 3-day window: enough to train on.
    simulated_lake(lake_dir, visitors=6000, days=60)
    return lake_dir


@contextmanager
def embedded_mlflow() -> Iterator[None]:
    """Each example's own MLflow store under its data directory (no store from the
    environment)."""
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def trained(root: Path, lake: Path, config: FeatureConfig) -> Settings:
    """A data directory on ``lake`` with a champion trained by ``jobs.train`` on ``config``."""
    shutil.copytree(lake, root / "lake")
    app_settings = Settings(
        data_dir=root,
        snapshots=SnapshotSettings(
            slide=timedelta(days=7),
            horizon=timedelta(days=7),
            max_snapshots=4,
            lookback=config.lookback,
            session_timeout=config.session_timeout,
            local_time_offset=config.local_time_offset,
        ),
        training=TrainingSettings(n_estimators=60, candidates=("lightgbm",), reference_rows=500),
        serving=serving_settings(),
    )
    result = jobs.train(app_settings)
    assert promote_challenger(root, AS_OF).promoted, result.model_version
    return app_settings


def snapshot_features(lake: Path, config: FeatureConfig) -> pl.DataFrame:
    """What training computes for the snapshot at ``AS_OF`` under ``config``."""
    plan = SnapshotConfig(
        start=AS_OF,
        end=AS_OF,
        lookback=config.lookback,
        session_timeout=config.session_timeout,
        local_time_offset=config.local_time_offset,
    )
    frame = build_snapshots(lake, plan)
    assert isinstance(frame, pl.LazyFrame)
    return frame.collect().select("visitor_id", *FEATURE_COLUMNS)


def champion(app_settings: Settings) -> LoadedModel:
    paths = jobs.serving_paths(app_settings)
    return load_registered_model(
        app_settings.serving.model_uri,
        tracking_uri=paths.tracking_uri,
        cache_dir=paths.model_cache_dir,
        predictor="booster",
    )


def expected_scores(loaded: LoadedModel, features: pl.DataFrame) -> dict[str, float]:
    """The model's probabilities for the training snapshot's features, by visitor."""
    ordered = features.sort("visitor_id")
    matrix = feature_matrix(ordered)[:, model_columns(loaded.model)]
    scores = loaded.model.predict_proba(np.ascontiguousarray(matrix))
    return dict(zip(ordered.get_column("visitor_id"), scores.tolist(), strict=True))


def later_page_view(visitor: str) -> dict[str, object]:
    """An event an hour after ``AS_OF``, scored as of ``AS_OF``: stored, but not counted, so
    the answer comes from the stored history alone."""
    moment = (AS_OF + timedelta(hours=1)).isoformat()
    return {
        "visitor_id": visitor,
        "as_of": AS_OF.isoformat(),
        "events": [{"event_time": moment, "event_name": "page_view"}],
    }


@EXAMPLES
@given(config=feature_configs())
@example(  # the edges: the shortest window, the shortest sessions, the farthest offset west
    config=FeatureConfig(
        lookback=timedelta(days=3),
        session_timeout=timedelta(minutes=5),
        local_time_offset=timedelta(hours=-12),
    )
)
def test_every_path_computes_the_models_features(
    lake: Path, tmp_path_factory: pytest.TempPathFactory, config: FeatureConfig
) -> None:
    with embedded_mlflow():
        app_settings = trained(tmp_path_factory.mktemp("contract"), lake, config)
        loaded = champion(app_settings)
        assert loaded.feature_config == config
        logged = MlflowClient(jobs.serving_paths(app_settings).tracking_uri)
        params = logged.get_run(str(loaded.info.run_id)).data.params
        written = config.model_dump(mode="json")
        assert {k: params[f"features.{k}"] for k in written} == written
        # Outcomes of its runs (monitor, measure) count over its own label window, whatever
        # the snapshot settings say now.
        later = app_settings.model_copy(update={"snapshots": SnapshotSettings()})
        assert jobs.outcome_window(later, loaded.info.version) == timedelta(days=7)
        truth = snapshot_features(lake, config)

        batch = collect(model_features(app_settings.lake_dir, AS_OF, loaded))
        assert_features_close(batch, truth)

        paths = jobs.serving_paths(app_settings)
        summary = score_visitors(app_settings.serving, paths, as_of=AS_OF)
        scores = pl.read_parquet(summary.files["scores"])
        expected = expected_scores(loaded, truth)
        batch_scores = dict(zip(scores["visitor_id"], scores["score"], strict=True))
        visitors = sorted(expected)
        assert sorted(batch_scores) == visitors
        assert_allclose(
            [batch_scores[v] for v in visitors], [expected[v] for v in visitors], rtol=1e-9
        )

        monitored = scored_population(app_settings, scores).select("visitor_id", *FEATURE_COLUMNS)
        assert_features_close(
            monitored, truth.join(monitored.select("visitor_id"), on="visitor_id")
        )

        with TestClient(create_app(app_settings.serving, paths)) as client:
            described = client.get("/v1/model").json()["feature_config"]
            assert described == config.model_dump(mode="json")
            for visitor in visitors[:: max(1, len(visitors) // 12)]:
                answer = client.post("/v1/events", headers=KEY, json=later_page_view(visitor))
                assert answer.status_code == 200, answer.text
                online = answer.json()["score"]
                assert_allclose(online["score"], batch_scores[visitor], rtol=1e-9)
                assert online["history_complete"] is True


@pytest.mark.spark
@settings(
    max_examples=1,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(config=feature_configs())
def test_spark_computes_the_models_features(
    lake: Path, tmp_path_factory: pytest.TempPathFactory, config: FeatureConfig
) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH (install openjdk-17-jre-headless)")
    with embedded_mlflow():
        app_settings = trained(tmp_path_factory.mktemp("contract-spark"), lake, config)
        loaded = champion(app_settings)
        on_spark = collect(model_features(app_settings.lake_dir, AS_OF, loaded, engine="spark"))
        assert_features_close(on_spark, snapshot_features(lake, config))
        paths = jobs.serving_paths(app_settings)
        embedded = score_visitors(app_settings.serving, paths, as_of=AS_OF)
        elsewhere = replace(
            paths,
            outputs_dir=app_settings.data_dir / "spark-outputs",
            serving_dir=app_settings.data_dir / "spark-serving",
        )
        spark_run = score_visitors(app_settings.serving, elsewhere, as_of=AS_OF, engine="spark")
        columns = ["visitor_id", "score", "route", "expected_value"]
        left, right = (
            pl.read_parquet(run.files["scores"]).select(columns).sort("visitor_id")
            for run in (embedded, spark_run)
        )
        assert left["visitor_id"].to_list() == right["visitor_id"].to_list()
        assert_allclose(right["score"].to_numpy(), left["score"].to_numpy(), rtol=1e-9)


def _tiny_registry(root: Path, lake: Path) -> tuple[str, ServingPaths]:
    """A registry under ``root`` and paths on ``lake`` (tiny models: no training)."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    paths = ServingPaths(
        lake_dir=lake, outputs_dir=root / "outputs", serving_dir=root / "serving", tracking_uri=uri
    )
    return uri, paths


def test_a_swap_to_a_longer_window_follows_the_model_and_flags_short_histories(
    lake: Path, tmp_path: Path
) -> None:
    """The champion moves to a model with a 35-day window while the live batch run stored
    30-day histories: answers use the new window and say the history may be short; the next
    batch run stores 35 days, and the answers are whole again, equal to the batch's."""
    uri, paths = _tiny_registry(tmp_path, lake)
    register_tiny_model(uri, tmp_path / "artifacts")
    serving = serving_settings()
    first = score_visitors(serving, paths)
    visitor = pl.read_parquet(first.files["scores"])["visitor_id"][0]
    as_of = first.as_of.isoformat()
    post = {"visitor_id": visitor, "as_of": as_of, "events": [
        {"event_time": (first.as_of + timedelta(hours=1)).isoformat(), "event_name": "page_view"}
    ]}  # fmt: skip
    with TestClient(create_app(serving, paths)) as client:
        assert client.post("/v1/events", headers=KEY, json=post).json()["score"]["history_complete"]
        longer = FeatureConfig(lookback=timedelta(days=35))
        register_tiny_model(uri, tmp_path / "artifacts", seed=1, feature_config=longer)
        assert client.post("/v1/admin/reload", headers=KEY).status_code == 200
        assert client.get("/v1/model").json()["feature_config"]["lookback"] == "P35D"
        short = client.post("/v1/events", headers=KEY, json=post).json()["score"]
        assert short["history_complete"] is False
        assert "propensity_history_incomplete_total 1.0" in client.get("/metrics").text

        second = score_visitors(serving, paths, as_of=first.as_of)
        assert second.model_version != first.model_version
        whole = client.post("/v1/events", headers=KEY, json=post).json()["score"]
        batch = pl.read_parquet(second.files["scores"]).filter(pl.col("visitor_id") == visitor)
        assert whole["history_complete"] is True
        assert_allclose(whole["score"], batch["score"][0], rtol=1e-9)


def test_a_model_that_records_no_feature_configuration_is_never_scored(
    lake: Path, tmp_path: Path
) -> None:
    """A model logged before models carried their feature configuration (spec format 1):
    loading it fails with what to do, the API stays up and says why it is not ready, and the
    batch job refuses it."""
    import mlflow
    import pandas as pd

    from serving.testing import TINY_FEATURES, tiny_spec, tiny_training_data
    from training.tracking import Store, client_for, experiment_id, log_scoring_model

    uri, paths = _tiny_registry(tmp_path, lake)
    store = Store(uri, (tmp_path / "artifacts").as_uri())
    client = client_for(store)
    spec, booster = tiny_spec()
    old = {k: v for k, v in spec.items() if k not in ("feature_config", "label")}
    old["format_version"] = 1
    example = pd.DataFrame(tiny_training_data(rows=3)[0], columns=list(TINY_FEATURES))
    with mlflow.start_run(experiment_id=experiment_id(client, store, "old")):
        info = log_scoring_model(old, booster, example, "propensity")
    client.set_registered_model_alias("propensity", "champion", str(info.registered_model_version))

    with pytest.raises(ModelUnavailable, match=r"records no feature configuration.*retrain it"):
        load_registered_model(
            "models:/propensity@champion",
            tracking_uri=uri,
            cache_dir=paths.model_cache_dir,
            predictor="booster",
        )
    with pytest.raises(ModelUnavailable, match="retrain it"):
        score_visitors(serving_settings(), paths)
    with TestClient(create_app(serving_settings(), paths)) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 503 and "retrain it" in ready.json()["reason"]
        assert api.get("/healthz").status_code == 200
