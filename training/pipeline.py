"""Train from a snapshot stack: split by time, fit and calibrate every candidate, evaluate
out of time, choose on validation, report, log to MLflow and register the challenger.

``fit_and_evaluate`` is the core (no disk, no MLflow); ``train_from_snapshots`` adds the
report and MLflow; ``train_from_table`` reads a ready feature table (Parquet/CSV) first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
import polars as pl

from features.definitions import FeatureConfig
from training.candidates import Candidate, fit_candidates
from training.data import TimeSplit, as_polars, data_hash, split_by_time
from training.evaluation import metrics_table, reference_metrics, segment_masks, select_candidate
from training.settings import TrainingSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    split: TimeSplit
    candidates: list[Candidate]
    table: dict[str, dict[str, Any]]
    chosen: Candidate
    lineage: dict[str, Any]
    input_example: pd.DataFrame  # a few test rows, features by name, with their own dtypes


def reference_for(
    reference: pl.DataFrame, split: TimeSplit, time_col: str, column: str = "p_true"
) -> Any:
    """``column`` of the test rows, in their order, from ``visitor_id, <time_col>, column``."""
    test = split.test
    keys = pl.DataFrame({"visitor_id": test.visitor_id, time_col: test.as_of}).with_columns(
        pl.col("visitor_id").cast(reference.schema["visitor_id"]),
        pl.col(time_col).cast(reference.schema[time_col]),
    )
    joined = keys.join(reference, on=["visitor_id", time_col], how="left", maintain_order="left")
    return joined.get_column(column).to_numpy()


def fit_and_evaluate(
    snapshots: pl.DataFrame | pd.DataFrame,
    feature_columns: Sequence[str],
    settings: TrainingSettings,
    *,
    horizon: timedelta | None = None,
    events: pl.DataFrame | pl.LazyFrame | None = None,
    contacts: pl.DataFrame | None = None,
    reference: pl.DataFrame | None = None,
    snapshot_config: Mapping[str, Any] | None = None,
    feature_config: FeatureConfig | None = None,
    label_col: str = "label",
    time_col: str = "as_of",
) -> Outcome:
    """Everything but the edges. ``events`` (canonical, purchase-only data) adds BG/NBD;
    ``contacts`` (``visitor_id, email_status``) adds contactability segments to the report;
    ``reference`` (``visitor_id, as_of, p_true``, simulated data) adds the true-propensity
    AUC and the chosen model's fraction of it; an optional ``p_as_of`` column (churn
    inferred, rate and intent known, ``features.simulation.as_of``) adds the same against it
    as ``as_of_roc_auc``, ``as_of_log_loss``, ``fraction_of_as_of_auc``, and an optional
    ``p_ideal`` column (the ideal observer of the events, ``features.simulation.ideal``) as
    ``ideal_roc_auc``, ``ideal_log_loss``, ``fraction_of_ideal_auc``. ``feature_config``
    (how the features were computed; None for a ready table) is part of the fingerprint."""
    # One row order whatever order the snapshots were collected in (a streaming collect does
    # not keep it): LightGBM's binning and bagging, and the data hash, depend on it.
    frame = as_polars(snapshots).sort(time_col, "visitor_id", maintain_order=True)
    split = split_by_time(
        frame,
        feature_columns,
        label_col=label_col,
        time_col=time_col,
        test_snapshots=settings.test_snapshots,
        validation_snapshots=settings.validation_snapshots,
        horizon=horizon,
    )
    candidates = fit_candidates(split, settings, events, horizon)
    masks = segment_masks(frame, split.test, contacts, time_col)
    table = metrics_table(candidates, split.validation, split.test, masks)
    chosen = select_candidate(candidates, table)
    lineage = {
        **split.lineage(),
        "data_hash": data_hash(
            frame, ["visitor_id", time_col, label_col, *feature_columns], feature_config
        ),
        "feature_columns": list(feature_columns),
        "snapshot_config": dict(snapshot_config or {}),
        "horizon": None if horizon is None else str(horizon),
    }
    if reference is not None:
        model_auc = table[chosen.name]["test"]["roc_auc"]
        truth = reference_for(reference, split, time_col)
        lineage["reference"] = reference_metrics(split.test.label, truth, model_auc)
        for column, name in (("p_as_of", "as_of"), ("p_ideal", "ideal")):
            if column in reference.columns:
                knowable = reference_for(reference, split, time_col, column)
                known = reference_metrics(split.test.label, knowable, model_auc)
                lineage["reference"] |= {k.replace("true", name): v for k, v in known.items()}
    log.info("chosen %s: test ROC-AUC %.4f", chosen.name, table[chosen.name]["test"]["roc_auc"])
    return Outcome(
        split, candidates, table, chosen, lineage, input_example(frame, feature_columns, time_col)
    )


def input_example(
    frame: pl.DataFrame, feature_columns: Sequence[str], time_col: str, rows: int = 5
) -> pd.DataFrame:
    """Latest rows with the feature dtypes callers send: integer counts stay integers (the
    model's signature then accepts them), integer columns holding nulls become floats."""
    columns = [
        pl.col(c).cast(pl.Float64)
        if frame.schema[c].is_integer() and frame.get_column(c).null_count()
        else pl.col(c)
        for c in feature_columns
    ]
    latest = frame.filter(pl.col(time_col) == pl.col(time_col).max())
    return latest.head(rows).select(columns).to_pandas()


def read_table(path: Any) -> pl.DataFrame:
    """A ready feature table from Parquet or CSV (optionally gzip-compressed)."""
    name = str(path).lower()
    if name.endswith(".parquet"):
        return pl.read_parquet(path)
    if name.endswith((".csv", ".csv.gz")):
        return pl.read_csv(path, try_parse_dates=True, infer_schema_length=None)
    raise ValueError(f"{path}: expected a .parquet or .csv(.gz) feature table")


def table_to_snapshots(
    table: pl.DataFrame,
    label_col: str,
    time_col: str,
    id_col: str | None = None,
    feature_columns: Sequence[str] | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """The snapshot contract from a ready table: ``visitor_id`` (row number when there is
    no id column), ``as_of`` (UTC), ``label`` (0/1) and the numeric feature columns (all
    numeric and boolean columns but the label, time and id, unless named)."""
    if label_col not in table.columns or time_col not in table.columns:
        raise ValueError(f"table lacks {label_col!r} or {time_col!r}; has {table.columns}")
    used = {label_col, time_col, *([id_col] if id_col else [])}
    columns = (
        list(feature_columns)
        if feature_columns
        else [
            c
            for c, dtype in table.schema.items()
            if c not in used and (dtype.is_numeric() or dtype == pl.Boolean)
        ]
    )
    ident = pl.col(id_col).cast(pl.String) if id_col else pl.int_range(pl.len()).cast(pl.String)
    snapshots = table.select(
        ident.alias("visitor_id"),
        utc_time(time_col, table.schema[time_col]).alias("as_of"),
        pl.col(label_col).cast(pl.Int64).alias("label"),
        *(pl.col(c).cast(pl.Float64) for c in columns),
    )
    return snapshots, columns


def utc_time(column: str, dtype: pl.DataType) -> pl.Expr:
    """A time column as UTC datetimes: naive values and dates are taken to be UTC."""
    time = pl.col(column)
    if dtype == pl.String:
        return time.str.to_datetime(time_unit="us", time_zone="UTC")
    if dtype == pl.Date:
        return time.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return time.dt.replace_time_zone("UTC")
        return time.dt.convert_time_zone("UTC")
    raise ValueError(f"time column {column!r} has dtype {dtype}; expected a date or datetime")
