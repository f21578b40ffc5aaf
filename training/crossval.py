"""K-fold cross-validation for a ready feature table without a time column.

Only for data with no time order (e.g. one row per independent session): with a time
column, use the out-of-time path. Each fold is the test set once; of the other rows a
stratified fifth is the validation set (early stopping, calibration), the rest training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.model_selection import StratifiedKFold, train_test_split

from training.candidates import fit_candidates
from training.data import check_snapshots, split_by_rows
from training.evaluation import metrics_table
from training.pipeline import read_table
from training.settings import TrainingSettings


def cross_validate(
    frame: pl.DataFrame,
    feature_columns: Sequence[str],
    settings: TrainingSettings,
    *,
    label_col: str = "label",
    folds: int = 5,
) -> dict[str, dict[str, Any]]:
    """``{model: {metric: mean over folds, metric + "_std": spread}}`` on the test folds."""
    frame = frame.with_columns(
        pl.int_range(pl.len()).cast(pl.String).alias("visitor_id"),
        pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("_time"),
    )
    check_snapshots(frame, feature_columns, label_col, "_time")
    label = frame.get_column(label_col).cast(pl.Int64).to_numpy()
    splitter = StratifiedKFold(folds, shuffle=True, random_state=settings.seed)
    per_fold: dict[str, list[dict[str, float]]] = {}
    for rest, test in splitter.split(np.zeros(len(label)), label):
        train, validation = train_test_split(
            rest, test_size=0.2, stratify=label[rest], random_state=settings.seed
        )
        rows = {"train": train, "validation": validation, "test": test}
        split = split_by_rows(frame, feature_columns, rows, label_col=label_col, time_col="_time")
        candidates = fit_candidates(split, settings)
        for name, parts in metrics_table(candidates, split.validation, split.test, {}).items():
            per_fold.setdefault(name, []).append(parts["test"])
    return {name: summarise(results) for name, results in per_fold.items()}


def summarise(results: Sequence[dict[str, float]]) -> dict[str, float]:
    summary: dict[str, float] = {"folds": float(len(results))}
    for key in results[0]:
        values = np.array([r[key] for r in results])
        summary[key], summary[f"{key}_std"] = float(values.mean()), float(values.std())
    return summary


def cross_validate_table(
    path: Path,
    label_col: str,
    settings: TrainingSettings,
    *,
    feature_columns: Sequence[str] | None = None,
    folds: int = 5,
) -> dict[str, dict[str, Any]]:
    """Cross-validate every candidate on a Parquet/CSV table; features: the named columns,
    else every numeric or boolean column but the label."""
    table = read_table(path)
    columns = list(feature_columns) if feature_columns else [
        c for c, dtype in table.schema.items()
        if c != label_col and (dtype.is_numeric() or dtype == pl.Boolean)
    ]  # fmt: skip
    selected = table.select(
        pl.col(label_col).cast(pl.Int64).alias("label"),
        *(pl.col(c).cast(pl.Float64) for c in columns),
    )
    return cross_validate(selected, columns, settings, folds=folds)
