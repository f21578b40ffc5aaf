"""Has the scored population moved away from what the model was trained on? Pure functions.

A *reference* (a sample of the training test set's features and scores, logged with the
model) is compared with a *current* population (a sample of a scoring run's features and
scores), column by column:

- Population stability index over bins cut at the reference's quantiles. A value holding
  at least one bin's share of the reference (the zeros of a count) is a bin of its own and
  the rest is cut at its own quantiles, so a zero-inflated feature still has bins where its
  shift shows. Missing values are one more bin. PSI measures *how much* the distribution
  moved, not whether it moved at all, so it does not flag everything on a large sample the
  way a significance test does; a common reading is < 0.1 stable, 0.1-0.2 some shift,
  > 0.2 a real shift.
- Share of missing values, reference and current.
- New categories (text columns): the share of current rows with a value the reference
  never had.

Realised performance of an older run whose outcomes have arrived: ROC-AUC and expected
calibration error (equal-count bins of the score, weighted by rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score

from contract.metrics import expected_calibration_error, reliability_bins

FloatArray = npt.NDArray[np.float64]
#: Floor of a bin's share inside the PSI logarithm, so an empty bin gives a large, finite term.
SHARE_FLOOR = 1e-4
SCORE = "score"


class MonitoringSettings(BaseModel):
    """Limits and sample sizes of ``propensity monitor`` (``PROPENSITY_MONITORING__…``)."""

    model_config = ConfigDict(frozen=True)

    psi_limit: float = Field(0.2, gt=0, description="flag a column whose PSI exceeds this")
    missing_share_limit: float = Field(
        0.05, gt=0, le=1, description="flag a change of the missing share by more than this"
    )
    new_category_limit: float = Field(
        0.01, gt=0, le=1, description="flag when more current rows than this have new categories"
    )
    bins: int = Field(10, ge=2, le=100, description="quantile bins of the reference")
    sample_rows: int = Field(50_000, ge=100, description="current rows compared at most")
    calibration_bins: int = Field(10, ge=2, le=100, description="equal-count score bins of the ECE")
    textfile: Path | None = Field(
        None, description="Prometheus textfile [default: DATA_DIR/monitoring/propensity.prom]"
    )
    seed: int = 0


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    psi: float
    missing_reference: float
    missing_current: float
    new_category_share: float
    flags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RealisedPerformance:
    run_id: str
    visitors: int
    positives: int
    roc_auc: float
    ece: float
    mean_score: float
    positive_rate: float
    #: per calibration bin: (mean score, observed rate, rows), empty bins left out
    reliability: tuple[tuple[float, float, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantile_edges(reference: FloatArray, bins: int) -> FloatArray:
    """Inner bin edges (right-closed) from the finite reference values; see module doc."""
    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        return np.zeros(0)
    values, counts = np.unique(finite, return_counts=True)
    heavy = values[counts >= finite.size / bins]
    rest = finite[~np.isin(finite, heavy)]
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    cuts = np.quantile(rest, inner) if rest.size else np.zeros(0)
    edges = np.unique(np.concatenate([heavy, cuts]))
    return edges[edges < finite.max()]


def bin_shares(values: FloatArray, edges: FloatArray) -> FloatArray:
    """Share of values per bin ``(-inf, e0], (e0, e1], …, (e_last, inf)``, then missing."""
    finite = np.isfinite(values)
    index = np.searchsorted(edges, values[finite], side="left")
    counts = np.bincount(index, minlength=edges.size + 1).astype(np.float64)
    counts = np.append(counts, float((~finite).sum()))
    return counts / max(values.size, 1)


def psi_of_shares(reference: FloatArray, current: FloatArray) -> float:
    """Σ (c − r) · ln(c / r) over bins, shares floored at ``SHARE_FLOOR``; never negative."""
    r = np.maximum(reference, SHARE_FLOOR)
    c = np.maximum(current, SHARE_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def psi(reference: FloatArray, current: FloatArray, bins: int = 10) -> float:
    """Population stability index of ``current`` against bins cut on ``reference``."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    edges = quantile_edges(reference, bins)
    return psi_of_shares(bin_shares(reference, edges), bin_shares(current, edges))


def missing_share(values: pl.Series) -> float:
    if values.is_empty():
        return 0.0
    missing = values.is_null()
    if values.dtype.is_float():
        missing = missing | values.is_nan().fill_null(True)
    return float(missing.cast(pl.Float64).mean() or 0.0)  # type: ignore[arg-type]


def new_category_share(reference: pl.Series, current: pl.Series) -> float:
    """Share of current rows whose (non-null) value never occurs in the reference."""
    if current.is_empty():
        return 0.0
    known = reference.drop_nulls().unique().implode()
    new = current.is_not_null() & ~current.is_in(known)
    return float(new.cast(pl.Float64).mean() or 0.0)  # type: ignore[arg-type]


def column_drift(
    column: str, reference: pl.Series, current: pl.Series, settings: MonitoringSettings
) -> ColumnDrift:
    """PSI, missing shares and new categories of one column, with the limits it broke."""
    numeric = reference.dtype.is_numeric() or reference.dtype == pl.Boolean
    if numeric:
        value = psi(_floats(reference), _floats(current), settings.bins)
        new = 0.0
    else:
        value = psi_of_shares(*_category_shares(reference, current))
        new = new_category_share(reference, current)
    miss_ref, miss_cur = missing_share(reference), missing_share(current)
    flags = [
        name
        for name, broken in (
            ("psi", value > settings.psi_limit),
            ("missing", abs(miss_cur - miss_ref) > settings.missing_share_limit),
            ("new_categories", new > settings.new_category_limit),
        )
        if broken
    ]
    return ColumnDrift(column, value, miss_ref, miss_cur, new, tuple(flags))


def drift_table(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: Sequence[str],
    settings: MonitoringSettings,
) -> list[ColumnDrift]:
    """``column_drift`` of every named column (present in both frames)."""
    missing = [c for c in columns if c not in reference.columns or c not in current.columns]
    if missing:
        raise ValueError(f"columns absent from the reference or the current data: {missing}")
    return [column_drift(c, reference[c], current[c], settings) for c in columns]


def sample(frame: pl.DataFrame, rows: int, seed: int) -> pl.DataFrame:
    """At most ``rows`` rows, drawn without replacement (all of them when fewer)."""
    return frame if frame.height <= rows else frame.sample(rows, seed=seed)


def realised_performance(
    run_id: str, label: npt.ArrayLike, score: npt.ArrayLike, bins: int
) -> RealisedPerformance:
    """ROC-AUC (NaN with a single class) and calibration of scores against outcomes."""
    y = np.asarray(label, dtype=np.int64)
    p = np.asarray(score, dtype=np.float64)
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else float("nan")
    return RealisedPerformance(
        run_id=run_id,
        visitors=int(y.size),
        positives=int(y.sum()),
        roc_auc=auc,
        ece=expected_calibration_error(y, p, bins),
        mean_score=float(p.mean()) if p.size else float("nan"),
        positive_rate=float(y.mean()) if y.size else float("nan"),
        reliability=tuple(reliability_bins(y, p, bins)),
    )


def _floats(values: pl.Series) -> FloatArray:
    return values.cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _category_shares(reference: pl.Series, current: pl.Series) -> tuple[FloatArray, FloatArray]:
    """Shares per reference category (plus one bin for anything else, one for missing)."""
    levels = reference.drop_nulls().unique().sort().to_list()

    def shares(values: pl.Series) -> FloatArray:
        counts = dict(values.drop_nulls().value_counts().iter_rows())
        known = [float(counts.get(level, 0)) for level in levels]
        other = float(sum(n for v, n in counts.items() if v not in set(levels)))
        array = np.array([*known, other, float(values.null_count())])
        return array / max(values.len(), 1)

    return shares(reference), shares(current)
