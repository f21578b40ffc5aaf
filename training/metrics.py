"""Metrics of calibrated probabilities against 0/1 labels: values in, values out.

Ranking and probability metrics come from scikit-learn; lift/capture at the top k% are
defined here because scikit-learn has none, and ECE in ``contract.metrics``, where monitoring
reads it too.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from contract.metrics import expected_calibration_error

#: Shares of the highest-scored visitors reported for lift and capture.
TOP_SHARES: tuple[float, ...] = (0.05, 0.10, 0.20)
_EPS = 1e-15


def top_share_mask(probability: npt.ArrayLike, share: float) -> npt.NDArray[np.bool_]:
    """The ``ceil(share * n)`` highest-scored rows (ties broken by position, stably)."""
    p = np.asarray(probability, dtype=np.float64)
    k = max(1, int(np.ceil(share * len(p))))
    mask = np.zeros(len(p), dtype=bool)
    mask[np.argsort(-p, kind="stable")[:k]] = True
    return mask


def lift_and_capture(
    label: npt.ArrayLike, probability: npt.ArrayLike, share: float
) -> tuple[float, float]:
    """(lift, capture) in the top ``share``: positive rate there / overall positive rate, and
    the fraction of all positives found there."""
    y = np.asarray(label, dtype=np.float64)
    top = top_share_mask(probability, share)
    positives = y.sum()
    if positives == 0:
        return float("nan"), float("nan")
    return float(y[top].mean() / y.mean()), float(y[top].sum() / positives)


def evaluate_probabilities(label: npt.ArrayLike, probability: npt.ArrayLike) -> dict[str, float]:
    """Every reported metric; ranking metrics are NaN when only one class is present."""
    y = np.asarray(label, dtype=np.int64)
    p = np.clip(np.asarray(probability, dtype=np.float64), _EPS, 1 - _EPS)
    both = 0 < y.sum() < len(y)
    metrics: dict[str, float] = {
        "rows": float(len(y)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
    }
    for share in TOP_SHARES:
        lift, capture = lift_and_capture(y, p, share)
        metrics[f"lift_top{round(share * 100)}"] = lift
        metrics[f"capture_top{round(share * 100)}"] = capture
    return metrics
