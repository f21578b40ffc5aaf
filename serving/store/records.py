"""Stored records: a ``VisitorScore`` as JSON bytes, built vectorised for a batch run and
one at a time for a real-time re-score. Both shapes are checked against ``VisitorScore``
in ``tests/unit/serving/store/test_records.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import polars as pl

_ISO = "%Y-%m-%dT%H:%M:%S%.6f+00:00"


def batch_records(scored: pl.DataFrame) -> pl.DataFrame:
    """``visitor_id`` and ``record`` (Binary JSON) for every row of a scored run."""
    record = pl.struct(
        "visitor_id",
        "score",
        pl.when(pl.col("decile") > 0).then(pl.col("decile")).alias("decile"),
        "route",
        "reason",
        "expected_value",
        "model_version",
        pl.col("as_of").dt.convert_time_zone("UTC").dt.to_string(_ISO).alias("as_of"),
        pl.col("scored_at").dt.convert_time_zone("UTC").dt.to_string(_ISO).alias("scored_at"),
        pl.lit("batch").alias("source"),
        "email_status",
        "ads_consent",
        "top_features",
        # Batch features come from the lake, every event of the model's window.
        pl.lit(True).alias("history_complete"),
    )
    return scored.select("visitor_id", record.struct.json_encode().cast(pl.Binary).alias("record"))


def real_time_record(
    *,
    visitor_id: str,
    score: float,
    decile: int | None,
    route: str,
    reason: str,
    expected_value: float,
    model_version: str,
    as_of: datetime,
    scored_at: datetime,
    email_status: str,
    ads_consent: str,
    top_features: list[dict[str, Any]] | None,
    history_complete: bool | None = None,
) -> bytes:
    return orjson.dumps(
        {
            "visitor_id": visitor_id,
            "score": score,
            "decile": decile,
            "route": route,
            "reason": reason,
            "expected_value": expected_value,
            "model_version": model_version,
            "as_of": as_of,
            "scored_at": scored_at,
            "source": "real_time",
            "email_status": email_status,
            "ads_consent": ads_consent,
            "top_features": top_features,
            "history_complete": history_complete,
        }
    )
