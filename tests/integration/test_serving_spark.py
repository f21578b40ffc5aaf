"""``propensity score --engine spark``: features computed on Spark (local mode) from the same
definitions give the same scores and decisions as the embedded Polars path."""

from __future__ import annotations

import shutil

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from serving.batch import score_visitors
from tests.integration.serving_world import settings, world

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
