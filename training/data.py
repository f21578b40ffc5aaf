"""The snapshot frame contract and the out-of-time split.

A *snapshot frame* has one row per (``visitor_id``, ``as_of``): the visitor's features as of
the cutoff ``as_of`` (a UTC datetime; features use only events before it), a 0/1 ``label``
(did the visitor purchase in the horizon after ``as_of``), and numeric feature columns named
by the caller. Several cutoffs stacked make the training data; polars or pandas are accepted.

The split is by cutoff, never by row: the latest ``test_snapshots`` cutoffs are the
out-of-time test set, the ``validation_snapshots`` cutoffs before them the validation set
(early stopping, calibration, model selection), the rest training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import polars as pl

from features.definitions import FeatureConfig

FloatMatrix = npt.NDArray[np.float64]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Split:
    """One part of the split: model inputs in ``feature_columns`` order, labels and keys."""

    features: FloatMatrix  # (rows, features), float64, NaN where a feature is null
    label: IntArray
    visitor_id: npt.NDArray[Any]
    as_of: npt.NDArray[np.datetime64]

    @property
    def rows(self) -> int:
        return int(self.label.shape[0])


@dataclass(frozen=True)
class TimeSplit:
    train: Split
    validation: Split
    test: Split
    feature_columns: tuple[str, ...]
    cutoffs: dict[str, list[str]]  # split name -> ISO cutoffs, for the lineage

    def lineage(self) -> dict[str, Any]:
        return {
            "rows": {name: part.rows for name, part in self.parts().items()},
            "positives": {name: int(part.label.sum()) for name, part in self.parts().items()},
            "cutoffs": self.cutoffs,
        }

    def parts(self) -> dict[str, Split]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_datetime(value: np.datetime64) -> datetime:
    """A cutoff from a ``Split.as_of`` array (naive UTC datetime64) as an aware datetime."""
    return _EPOCH + timedelta(microseconds=int(value.astype("datetime64[us]").astype(np.int64)))


def as_polars(snapshots: pl.DataFrame | pd.DataFrame) -> pl.DataFrame:
    return snapshots if isinstance(snapshots, pl.DataFrame) else pl.from_pandas(snapshots)


def check_snapshots(
    snapshots: pl.DataFrame, feature_columns: Sequence[str], label_col: str, time_col: str
) -> None:
    """Raise ``ValueError`` with a clear message when the frame breaks the contract."""
    required = ["visitor_id", label_col, time_col, *feature_columns]
    missing = [c for c in required if c not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshots lack columns {missing}")
    if not feature_columns:
        raise ValueError("no feature columns given")
    labels = set(snapshots.get_column(label_col).unique().to_list())
    if not labels <= {0, 1}:
        raise ValueError(f"{label_col} must be 0/1, found {sorted(map(str, labels))[:5]}")
    non_numeric = [
        c
        for c in feature_columns
        if not snapshots.schema[c].is_numeric() and snapshots.schema[c] != pl.Boolean
    ]
    if non_numeric:
        raise ValueError(f"feature columns must be numeric: {non_numeric}")


def feature_matrix(frame: pl.DataFrame, feature_columns: Sequence[str]) -> FloatMatrix:
    """Features by name as a C-ordered float64 matrix; nulls become NaN."""
    selected = frame.select(pl.col(c).cast(pl.Float64) for c in feature_columns)
    return np.ascontiguousarray(selected.to_numpy(), dtype=np.float64)


def _part(
    frame: pl.DataFrame, feature_columns: Sequence[str], label_col: str, time_col: str
) -> Split:
    return Split(
        features=feature_matrix(frame, feature_columns),
        label=frame.get_column(label_col).cast(pl.Int64).to_numpy(),
        visitor_id=frame.get_column("visitor_id").to_numpy(),
        as_of=frame.get_column(time_col).to_numpy(),
    )


def split_cutoffs(
    cutoffs: Sequence[datetime],
    test_snapshots: int,
    validation_snapshots: int,
    horizon: timedelta | None = None,
) -> tuple[list[datetime], list[datetime], list[datetime]]:
    """(train, validation, test) cutoffs: the latest are test, the ones before validation.

    With the label ``horizon``, label windows must not reach into a later part: a
    validation window overlapping the test period is an error, and training cutoffs whose
    window reaches past the first validation cutoff are dropped (purged), so that no label
    of the validation or test period is learned from.
    """
    ordered = sorted(set(cutoffs))
    needed = test_snapshots + validation_snapshots + 1
    if len(ordered) < needed:
        raise ValueError(
            f"{len(ordered)} snapshot cutoffs; an out-of-time split needs at least {needed} "
            f"({test_snapshots} test, {validation_snapshots} validation, 1 train)"
        )
    test = ordered[-test_snapshots:]
    validation = ordered[-(test_snapshots + validation_snapshots) : -test_snapshots]
    train = ordered[: -(test_snapshots + validation_snapshots)]
    if horizon is not None:
        if validation[-1] + horizon > test[0]:
            raise ValueError(
                f"the label window of validation cutoff {validation[-1]} ({horizon}) overlaps "
                f"the test period from {test[0]}: space cutoffs at least one horizon apart"
            )
        train = [c for c in train if c + horizon <= validation[0]]
        if not train:
            raise ValueError(
                f"no training cutoff whose {horizon} label window ends by the "
                f"first validation cutoff {validation[0]}"
            )
    return train, validation, test


def split_by_time(
    snapshots: pl.DataFrame | pd.DataFrame,
    feature_columns: Sequence[str],
    *,
    label_col: str = "label",
    time_col: str = "as_of",
    test_snapshots: int = 1,
    validation_snapshots: int = 1,
    horizon: timedelta | None = None,
) -> TimeSplit:
    """Split a snapshot stack by cutoff (see the module docstring); never a random split."""
    frame = as_polars(snapshots)
    check_snapshots(frame, feature_columns, label_col, time_col)
    cutoffs = frame.get_column(time_col).unique().to_list()
    train, validation, test = split_cutoffs(cutoffs, test_snapshots, validation_snapshots, horizon)
    parts = {
        name: _part(
            frame.filter(pl.col(time_col).is_in(kept)), feature_columns, label_col, time_col
        )
        for name, kept in (("train", train), ("validation", validation), ("test", test))
    }
    return TimeSplit(
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        feature_columns=tuple(feature_columns),
        cutoffs={
            name: [str(c) for c in kept]
            for name, kept in (("train", train), ("validation", validation), ("test", test))
        },
    )


#: Precision of float columns in ``data_hash``.
HASH_SIGNIFICANT_DIGITS = 10


def data_hash(
    snapshots: pl.DataFrame | pd.DataFrame,
    columns: Sequence[str],
    feature_config: FeatureConfig | None = None,
) -> str:
    """SHA-256 of the named columns, row order included, and of the feature configuration
    the features were computed with: the training data's fingerprint. The same values
    computed with another window (a session timeout that changed no value, say) are another
    training set, and a model trained on them scores with that window. Row hashes come from
    Polars, so compare hashes made with the same Polars version. Floats count to 10
    significant digits: parallel sums differ in the last bits between runs on the same
    events, and the fingerprint must not."""
    frame = as_polars(snapshots).select(columns)
    frame = frame.with_columns(
        pl.col(c).round_sig_figs(HASH_SIGNIFICANT_DIGITS)
        for c, dtype in frame.schema.items()
        if dtype.is_float()
    )
    digest = hashlib.sha256()
    digest.update(",".join(f"{c}:{frame.schema[c]}" for c in columns).encode())
    if feature_config is not None:
        digest.update(feature_config.model_dump_json().encode())
    digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def split_by_rows(
    frame: pl.DataFrame,
    feature_columns: Sequence[str],
    rows: Mapping[str, npt.NDArray[np.int64]],
    *,
    label_col: str = "label",
    time_col: str = "as_of",
) -> TimeSplit:
    """A split from row positions (``train``, ``validation``, ``test``): for cross-validation
    of tables without time, where a random split is all there is."""
    parts = {
        name: _part(frame[rows[name]], feature_columns, label_col, time_col)
        for name in ("train", "validation", "test")
    }
    return TimeSplit(**parts, feature_columns=tuple(feature_columns), cutoffs={})
