"""The whole training path on a real MLflow store in tmp: one artifact that loads and returns
the same probabilities as the raw spec path, aliases, and the promotion gate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from tests.model.synthetic_snapshots import FEATURES, WEEK, contacts_for, snapshot_stack
from training.registry import CHALLENGER, CHAMPION, alias_version, load_scorer, promote
from training.settings import TrainingSettings
from training.tracking import client_for, resolve_store
from training.train import (
    TrainingResult,
    promote_challenger,
    train_from_snapshots,
    train_from_table,
)

# One worker runs this module in file order: its tests share one trained store.
pytestmark = pytest.mark.xdist_group("training_mlflow")
SETTINGS = TrainingSettings(
    n_estimators=60, num_threads=1, monotone_constraints={"n_add_to_cart_7d": 1}
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh embedded store; an MLFLOW_TRACKING_URI of the caller must not receive runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield tmp_path_factory.mktemp("propensity")


@pytest.fixture(scope="module")
def snapshots() -> pl.DataFrame:
    return snapshot_stack(visitors=1200, cutoffs=4)


@pytest.fixture(scope="module")
def first(data_dir: Path, snapshots: pl.DataFrame) -> TrainingResult:
    return train_from_snapshots(
        snapshots, FEATURES, SETTINGS, data_dir=data_dir, horizon=WEEK,
        contacts=contacts_for(snapshots), snapshot_config={"horizon_days": 7},
        reference=snapshots.select("visitor_id", "as_of", "p_true"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def client(data_dir: Path, first: TrainingResult) -> MlflowClient:
    return client_for(resolve_store(data_dir, environ={}))


def test_logged_model_returns_the_probabilities_of_the_raw_path(
    first: TrainingResult, snapshots: pl.DataFrame
) -> None:
    features = snapshots.select(FEATURES).to_pandas().head(300)
    loaded = mlflow.pyfunc.load_model(first.model_uri)
    probability = np.asarray(loaded.predict(features))
    assert probability.dtype == np.float64
    assert np.all((probability > 0) & (probability < 1))
    assert len(np.unique(probability)) > 10  # probabilities, not 0/1 labels
    raw_path = load_scorer(first.model_uri).probability(features.to_numpy(np.float64))
    np.testing.assert_allclose(probability, raw_path, rtol=1e-12)
    # Columns are taken by name: a reordered frame gives the same answer.
    reordered = features[list(reversed(FEATURES))]
    np.testing.assert_allclose(loaded.predict(reordered), probability, rtol=1e-12)
    # Signature (features by name in, one probability out) and a saved input example.
    info = mlflow.models.get_model_info(first.model_uri)
    assert info.signature is not None and info.signature.inputs.input_names() == list(FEATURES)
    assert info.signature.outputs is not None
    assert info.saved_input_example_info is not None
    example = loaded.input_example
    assert example is not None and list(example.columns) == list(FEATURES)


def test_run_has_the_report_lineage_and_metrics(
    first: TrainingResult, client: MlflowClient
) -> None:
    assert first.report_path.is_file()
    html = first.report_path.read_text()
    assert "Out-of-time test" in html and "data_hash" in html and "email_contactable" in html
    assert {p.name for p in first.report_path.parent.glob("*.png")} >= {
        "roc.png", "pr.png", "reliability.png", "gains.png", "importance.png",
        "contributions.png"}  # fmt: skip
    run = client.get_run(first.run_id)
    assert run.data.params["data_hash"] == first.lineage["data_hash"]
    assert "test.roc_auc" in run.data.metrics and "fraction_of_true_auc" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"metrics_table.json", "feature_columns.json", "report"} <= artifacts
    assert set(first.metrics) >= {"lightgbm", "logistic", "rule"}
    assert first.lineage["rows"]["test"] == 1200


def test_new_model_is_challenger_then_promoted_with_an_audit(
    first: TrainingResult, client: MlflowClient, data_dir: Path
) -> None:
    assert alias_version(client, "propensity", CHALLENGER) == first.model_version
    result = promote_challenger(data_dir, NOW)
    assert result.promoted and result.reason == "no champion yet"
    assert alias_version(client, "propensity", CHAMPION) == first.model_version
    tags = client.get_model_version("propensity", str(first.model_version)).tags
    assert tags["promotion.at"] == NOW.isoformat()
    assert not any(
        v.current_stage not in ("None", None)
        for v in client.search_model_versions("name='propensity'")
    )


def test_a_worse_challenger_is_refused_unless_forced(
    first: TrainingResult, client: MlflowClient, data_dir: Path, snapshots: pl.DataFrame
) -> None:
    if alias_version(client, "propensity", CHAMPION) is None:
        # Independent of test order: the first model is the champion to beat.
        promote(client, NOW - timedelta(hours=1))
    assert alias_version(client, "propensity", CHAMPION) == first.model_version
    test_cutoff = snapshots["as_of"].max()
    # Same test set, but the challenger learns from scrambled features.
    scrambled = snapshots.with_columns(
        pl.when(pl.col("as_of") < test_cutoff)
        .then(pl.col(c).shuffle(seed=i))
        .otherwise(pl.col(c))
        .alias(c)
        for i, c in enumerate(FEATURES)
    )
    second = train_from_snapshots(scrambled, FEATURES, SETTINGS, data_dir=data_dir, horizon=WEEK)
    assert alias_version(client, "propensity", CHALLENGER) == second.model_version
    refused = promote(client, NOW)
    assert not refused.promoted and "does not beat" in refused.reason
    assert alias_version(client, "propensity", CHAMPION) == first.model_version
    tags = client.get_model_version("propensity", str(second.model_version)).tags
    assert "promotion_refused.reason" in tags
    forced = promote(client, NOW + timedelta(minutes=1), force=True)
    assert forced.promoted and forced.reason.startswith("forced")
    assert alias_version(client, "propensity", CHAMPION) == second.model_version


def test_ready_feature_table_trains_through_the_same_path(
    tmp_path: Path, snapshots: pl.DataFrame, data_dir: Path
) -> None:
    table = snapshots.rename({"as_of": "snapshot_date", "label": "bought"}).drop("p_true")
    path = tmp_path / "features.parquet"
    table.write_parquet(path)
    result = train_from_table(
        path,
        "bought",
        "snapshot_date",
        SETTINGS.model_copy(update={"candidates": ("logistic",)}),
        data_dir=data_dir,
        id_col="visitor_id",
    )
    assert result.chosen == "logistic"
    assert result.lineage["feature_columns"] == list(FEATURES)
    assert result.lineage["snapshot_config"]["source"] == str(path)
