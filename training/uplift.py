"""Uplift: who does a contact *change*? Two-model uplift estimates and their evaluation.

For a randomised experiment (treated 0/1 assigned at random, outcome 0/1 observed after):

- ``fit_two_model``: one classifier on the treated, one on the controls, on pre-treatment
  features only; uplift = P(outcome | treated, x) − P(outcome | control, x).
- ``fit_outcome_model``: a single classifier, e.g. the purchase propensity fitted on the
  control arm (what the visitor does without contact).
- ``qini_curve`` / ``qini_coefficient`` / ``uplift_at_k``: how well a ranking (by uplift, or
  by propensity) puts the persuadable first. Qini at the top ``n`` units is the incremental
  outcome among them, ``Y_t(n) − Y_c(n) · N_t(n) / N_c(n)`` (Radcliffe 2007).

Pure functions of arrays; the classifiers are LightGBM's scikit-learn estimators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

FloatArray = npt.NDArray[np.float64]


class UpliftModelSettings(BaseModel):
    """Small, regularised trees: uplift signals are weak and the arms are a few thousand."""

    model_config = ConfigDict(frozen=True)

    n_estimators: int = Field(200, gt=0)
    learning_rate: float = Field(0.03, gt=0)
    num_leaves: int = Field(8, ge=2)
    min_child_samples: int = Field(200, ge=1)
    seed: int = 0


def design_matrix(
    units: pl.DataFrame, numeric: Sequence[str], categorical: Sequence[str] = ()
) -> tuple[FloatArray, list[str]]:
    """Numeric columns as they are, categorical ones one-hot (levels sorted); returns the
    matrix and its column names. Pass pre-treatment columns only."""
    parts = units.select(pl.col(c).cast(pl.Float64) for c in numeric)
    if categorical:
        dummies = units.select(pl.col(c).cast(pl.String) for c in categorical).to_dummies()
        parts = pl.concat([parts, dummies.select(sorted(dummies.columns))], how="horizontal")
    return parts.to_numpy().astype(np.float64), parts.columns


def fit_outcome_model(
    features: FloatArray, outcome: npt.ArrayLike, settings: UpliftModelSettings
) -> lgb.LGBMClassifier:
    model = lgb.LGBMClassifier(
        n_estimators=settings.n_estimators, learning_rate=settings.learning_rate,
        num_leaves=settings.num_leaves, min_child_samples=settings.min_child_samples,
        random_state=settings.seed, n_jobs=1, verbose=-1,
    )  # fmt: skip
    return model.fit(features, np.asarray(outcome, dtype=np.int64))


def positive_probability(model: lgb.LGBMClassifier, features: FloatArray) -> FloatArray:
    """P(outcome = 1) per row."""
    return np.asarray(model.predict_proba(features), dtype=np.float64)[:, 1]


@dataclass(frozen=True)
class TwoModel:
    treated_model: lgb.LGBMClassifier
    control_model: lgb.LGBMClassifier

    def uplift(self, features: FloatArray) -> FloatArray:
        return positive_probability(self.treated_model, features) - positive_probability(
            self.control_model, features
        )


def fit_two_model(
    features: FloatArray,
    treated: npt.ArrayLike,
    outcome: npt.ArrayLike,
    settings: UpliftModelSettings,
) -> TwoModel:
    arm = np.asarray(treated, dtype=bool)
    label = np.asarray(outcome)
    return TwoModel(
        fit_outcome_model(features[arm], label[arm], settings),
        fit_outcome_model(features[~arm], label[~arm], settings),
    )


def _ranked(
    score: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    return np.asarray(treated, dtype=bool)[order], np.asarray(outcome, dtype=np.float64)[order]


def _tie_ends(score: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """0 and the rank at which each group of equal scores ends, best first: the only ranks
    a ranking actually decides (within a group, the order is the input's, not the model's)."""
    ordered = np.sort(np.asarray(score, dtype=np.float64))[::-1]
    if not len(ordered):
        return np.zeros(1, dtype=np.int64)
    inner = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    return np.concatenate([[0], inner, [len(ordered)]]).astype(np.int64)


def qini_curve(
    score: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """(share of units targeted, incremental outcome among them) for the top-n by ``score``,
    n = 0..N; the incremental outcome is in units of the treated count at each n.

    Tied scores are one step: the Qini is computed where each group of ties ends and
    interpolated linearly inside it (as ``sklearn.metrics.roc_curve`` treats ties, and uplift
    evaluation after it), so the curve does not depend on the order of tied rows."""
    arm, label = _ranked(score, treated, outcome)
    ends = _tie_ends(score)
    n_treated = np.concatenate([[0], np.cumsum(arm)])[ends]
    n_control = np.concatenate([[0], np.cumsum(~arm)])[ends]
    y_treated = np.concatenate([[0.0], np.cumsum(label * arm)])[ends]
    y_control = np.concatenate([[0.0], np.cumsum(label * ~arm)])[ends]
    scale = np.divide(n_treated, n_control, out=np.zeros(len(ends)), where=n_control > 0)
    at_ends = y_treated - y_control * scale
    n = np.arange(len(label) + 1)
    qini = np.interp(n, ends, at_ends).astype(np.float64)
    share = n / max(len(label), 1)
    return share, qini


def qini_coefficient(score: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike) -> float:
    """Area between the Qini curve and the random-targeting line, per unit targeted.

    Positive: the ranking finds the persuadable better than chance; 0: no better than random.
    Comparable between rankings of the same units, not between data sets.
    """
    share, qini = qini_curve(score, treated, outcome)
    random = share * qini[-1]
    return float(np.trapezoid(qini - random, share) / max(len(share) - 1, 1))


def uplift_at_k(
    score: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike, k: float
) -> float:
    """Treated rate − control rate among the top ``k`` share of units by ``score``."""
    arm, label = _ranked(score, treated, outcome)
    top = max(round(k * len(label)), 1)
    arm, label = arm[:top], label[:top]
    if arm.all() or not arm.any():
        return float("nan")
    return float(label[arm].mean() - label[~arm].mean())


def random_half(n: int, seed: int) -> npt.NDArray[np.bool_]:
    """A random half of ``n`` units (True = fit, False = evaluate): a randomised experiment
    has no time order to respect, and the two arms stay balanced in both halves."""
    return np.random.default_rng(seed).permutation(n) < n // 2


@dataclass(frozen=True)
class CrossFitted:
    """Out-of-fold scores for every unit: each half scored by models fitted on the other."""

    propensity: FloatArray  # P(outcome | no contact, x), fitted on the control arm
    uplift: FloatArray  # two-model uplift


def cross_fit(
    features: FloatArray,
    treated: npt.ArrayLike,
    outcome: npt.ArrayLike,
    settings: UpliftModelSettings,
) -> CrossFitted:
    """Two folds: every unit gets a propensity and an uplift from models that never saw it."""
    arm = np.asarray(treated, dtype=bool)
    label = np.asarray(outcome)
    first = random_half(len(label), settings.seed)
    propensity, uplift = np.zeros(len(label)), np.zeros(len(label))
    for fit in (first, ~first):
        control = fit & ~arm
        model = fit_outcome_model(features[control], label[control], settings)
        propensity[~fit] = positive_probability(model, features[~fit])
        uplift[~fit] = fit_two_model(features[fit], arm[fit], label[fit], settings).uplift(
            features[~fit]
        )
    return CrossFitted(propensity, uplift)


def targeting_table(
    rankings: dict[str, FloatArray],
    treated: npt.ArrayLike,
    outcome: npt.ArrayLike,
    shares: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
) -> pl.DataFrame:
    """One row per ranking: Qini coefficient and uplift at each targeted share."""
    rows = []
    for name, score in rankings.items():
        row: dict[str, float | str] = {
            "ranking": name,
            "qini_coefficient": qini_coefficient(score, treated, outcome),
        }
        for share in shares:
            row[f"uplift_at_{share:g}"] = uplift_at_k(score, treated, outcome, share)
        rows.append(row)
    return pl.DataFrame(rows)


def qini_difference_interval(
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    treated: npt.ArrayLike,
    outcome: npt.ArrayLike,
    *,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Qini coefficient of ``first`` minus that of ``second`` on the same units, with a paired
    bootstrap percentile interval (units resampled with replacement, both rankings kept)."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    arm, label = np.asarray(treated, dtype=bool), np.asarray(outcome, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for index in range(resamples):
        rows = rng.integers(0, len(label), len(label))
        draws[index] = qini_coefficient(a[rows], arm[rows], label[rows]) - qini_coefficient(
            b[rows], arm[rows], label[rows]
        )
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    point = qini_coefficient(a, arm, label) - qini_coefficient(b, arm, label)
    return point, float(low), float(high)
