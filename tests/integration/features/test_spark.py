"""The same feature and snapshot definitions on Spark (local mode) as on Polars.

One SparkSession for the whole test session (local[2], 2 shuffle partitions, no UI).
Skipped when pyspark or a Java runtime is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings

from features.batch import build_features, collect, write_features
from features.ingest.lake_writer import write_partitions
from features.snapshots import SnapshotConfig, build_snapshots
from features.testing import AS_OF, assert_features_close, event_lists, random_events, to_frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    pytest.importorskip("pyspark", reason="pyspark is not installed")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH (install openjdk-17-jre-headless)")
    from features.engines import spark_session

    session = spark_session(
        "local[2]",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.sql.ansi.enabled": "true",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=event_lists(min_size=1, max_size=30))
def test_spark_features_equal_polars_features(
    spark: SparkSession, history: list[dict[str, Any]]
) -> None:
    events = to_frame(history)
    on_spark = collect(build_features(events, AS_OF, engine="spark", spark=spark))
    on_polars = collect(build_features(events, AS_OF, engine="polars"))
    assert on_spark.schema == on_polars.schema
    assert_features_close(on_spark, on_polars)


def test_spark_snapshots_from_the_lake_equal_polars(spark: SparkSession, tmp_path: Path) -> None:
    history = random_events(150, seed=7)
    write_partitions(to_frame(history), tmp_path, "test")
    config = SnapshotConfig(
        start=AS_OF - timedelta(days=6),
        end=AS_OF,
        slide=timedelta(days=3),
        horizon=timedelta(days=5),
        exclude_purchased_within=timedelta(days=2),
    )
    on_spark = collect(build_snapshots(tmp_path, config, engine="spark", spark=spark))
    on_polars = collect(build_snapshots(tmp_path, config, engine="polars"))
    assert on_spark.schema == on_polars.schema
    keys = ["as_of", "visitor_id"]
    assert (
        on_spark.sort(keys)
        .select(*keys, "label")
        .equals(on_polars.sort(keys).select(*keys, "label"))
    )
    for moment in config.snapshot_times():
        assert_features_close(on_spark.filter(as_of=moment), on_polars.filter(as_of=moment))


def test_spark_writes_features(spark: SparkSession, tmp_path: Path) -> None:
    events = to_frame(random_events(20, seed=8))
    out = write_features(
        build_features(events, AS_OF, engine="spark", spark=spark), tmp_path / "features"
    )
    written = spark.read.parquet(str(out))
    assert written.count() == collect(build_features(events, AS_OF)).height


def test_cli_features_on_spark_equal_the_embedded_engine(
    spark: SparkSession, tmp_path: Path
) -> None:
    """``propensity features --engine spark`` (session from settings) == ``--engine polars``."""
    import json

    import polars as pl
    from typer.testing import CliRunner

    from propensity.cli import app

    events = to_frame(random_events(300, seed=9, visitors=25))
    write_partitions(events, tmp_path / "data" / "lake", "test")
    env = {"PROPENSITY_DATA_DIR": str(tmp_path / "data"), "PROPENSITY_SPARK__MASTER": "local[1]"}
    outputs = {}
    for engine in ("spark", "polars"):
        out = tmp_path / engine
        command = ["features", "--as-of", AS_OF.isoformat(), "--engine", engine, "--out", str(out)]
        result = CliRunner().invoke(app, [*command, "--json"], env=env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["engine"] == engine
        outputs[engine] = pl.read_parquet(out / "*.parquet")
    assert outputs["spark"].height == outputs["polars"].height > 0
    assert_features_close(outputs["spark"], outputs["polars"])
