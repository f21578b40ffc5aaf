"""``propensity score --engine spark``: features computed on Spark (local mode) from the same
definitions, scored and explained on the executors (``mapInPandas``), give the same scores,
decisions and top features as the embedded Polars path, visitor by visitor."""

from __future__ import annotations

import shutil

import orjson
import polars as pl
import pytest
from numpy.testing import assert_allclose
from polars.testing import assert_frame_equal

from serving.batch.job import score_visitors
from serving.store.sqlite import SqliteScoreStore
from tests.integration.serving.world import settings, world

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_spark_engine_agrees_visitor_by_visitor(tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH (install openjdk-17-jre-headless)")
    shared = world(tmp_path_factory)
    embedded = score_visitors(settings(), shared.paths("engine-polars"))
    on_spark = score_visitors(
        settings(), shared.paths("engine-spark"), engine="spark", as_of=embedded.as_of
    )
    columns = ["visitor_id", "score", "decile", "route", "reason", "expected_value"]
    left = pl.read_parquet(embedded.files["scores"]).select(columns).sort("visitor_id")
    right = pl.read_parquet(on_spark.files["scores"]).select(columns).sort("visitor_id")
    assert_frame_equal(left, right, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
    # The explanations, computed on the executors, name the same features with the same
    # parts (they live in the published records, not in the scores file).
    stores = [
        SqliteScoreStore.open(shared.paths(name).sqlite_path)
        for name in ("engine-polars", "engine-spark")
    ]
    try:
        for visitor in left.get_column("visitor_id").to_list()[:200]:
            tops = [
                orjson.loads(store.get_record(visitor) or b"{}")["top_features"] for store in stores
            ]
            assert tops[0], f"no top features for {visitor}"
            assert [t["feature"] for t in tops[0]] == [t["feature"] for t in tops[1]]
            assert_allclose(
                [t["contribution"] for t in tops[0]],
                [t["contribution"] for t in tops[1]],
                rtol=1e-9,
                atol=1e-12,
            )
    finally:
        for store in stores:
            store.close()
