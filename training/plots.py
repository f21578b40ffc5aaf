"""PNG plots for the report. Uses matplotlib's object API (``Figure``), so no global state
or GUI backend is touched; every function writes one file and returns its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

Scores = Mapping[str, npt.NDArray[np.float64]]
Labels = npt.NDArray[np.int64]


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, object]:
    figure = Figure(figsize=(5.5, 4.5))
    axes = figure.subplots()
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def roc_plot(label: Labels, scores: Scores, path: Path) -> Path:
    figure, axes = _axes("ROC, out-of-time test", "false positive rate", "true positive rate")
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(label, score)
        axes.plot(fpr, tpr, label=name)  # type: ignore[attr-defined]
    axes.plot([0, 1], [0, 1], "k:", label="random")  # type: ignore[attr-defined]
    axes.legend(loc="lower right")  # type: ignore[attr-defined]
    return _save(figure, path)


def pr_plot(label: Labels, scores: Scores, path: Path) -> Path:
    figure, axes = _axes("Precision-recall, out-of-time test", "recall", "precision")
    for name, score in scores.items():
        precision, recall, _ = precision_recall_curve(label, score)
        axes.plot(recall, precision, label=name)  # type: ignore[attr-defined]
    axes.axhline(float(np.mean(label)), color="k", linestyle=":", label="base rate")  # type: ignore[attr-defined]
    axes.legend(loc="upper right")  # type: ignore[attr-defined]
    return _save(figure, path)


def reliability_plot(label: Labels, probabilities: Scores, path: Path, bins: int = 10) -> Path:
    figure, axes = _axes(
        "Reliability (equal-count bins)", "mean predicted probability", "observed purchase rate"
    )
    top = 0.0
    for name, probability in probabilities.items():
        observed, predicted = calibration_curve(
            label, probability, n_bins=bins, strategy="quantile"
        )
        axes.plot(predicted, observed, marker="o", label=name)  # type: ignore[attr-defined]
        top = max(top, float(predicted.max()), float(observed.max()))
    axes.plot([0, top], [0, top], "k:", label="perfect")  # type: ignore[attr-defined]
    axes.legend(loc="upper left")  # type: ignore[attr-defined]
    return _save(figure, path)


def gains_plot(label: Labels, scores: Scores, path: Path) -> Path:
    figure, axes = _axes(
        "Cumulative gains", "share of visitors contacted (by score)", "share of purchasers reached"
    )
    share = np.arange(1, len(label) + 1) / len(label)
    for name, score in scores.items():
        ordered = np.asarray(label)[np.argsort(-score, kind="stable")]
        axes.plot(share, np.cumsum(ordered) / max(ordered.sum(), 1), label=name)  # type: ignore[attr-defined]
    axes.plot([0, 1], [0, 1], "k:", label="random")  # type: ignore[attr-defined]
    axes.legend(loc="lower right")  # type: ignore[attr-defined]
    return _save(figure, path)


def importance_plot(importance: Mapping[str, float], path: Path, top: int = 20) -> Path:
    names = list(importance)[:top][::-1]
    figure = Figure(figsize=(6.5, 0.3 * len(names) + 1.2))
    axes = figure.subplots()
    axes.barh(names, [importance[n] for n in names])
    axes.set(title="LightGBM feature importance (total gain)", xlabel="gain")
    return _save(figure, path)


def contribution_plot(
    contributions: npt.NDArray[np.float64],
    features: npt.NDArray[np.float64],
    feature_columns: Sequence[str],
    path: Path,
    top: int = 15,
    seed: int = 0,
) -> Path:
    """SHAP-style summary: per feature (by mean |contribution|), one dot per visitor at its
    contribution to the raw score, coloured by the feature's value rank."""
    parts = contributions[:, : len(feature_columns)]
    order = np.argsort(-np.abs(parts).mean(axis=0))[:top][::-1]
    rng = np.random.default_rng(seed)
    figure = Figure(figsize=(7, 0.35 * len(order) + 1.5))
    axes = figure.subplots()
    for row, column in enumerate(order):
        values = features[:, column]
        known = ~np.isnan(values)
        ranks = np.argsort(np.argsort(values[known])) / max(int(known.sum()) - 1, 1)
        jitter = rng.uniform(-0.3, 0.3, len(values))
        axes.scatter(parts[~known, column], row + jitter[~known], c="0.6", s=4, alpha=0.6)
        dots = axes.scatter(
            parts[known, column],
            row + jitter[known],
            c=ranks,
            cmap="coolwarm",
            s=4,
            alpha=0.6,
            vmin=0,
            vmax=1,
        )
    axes.set_yticks(range(len(order)), [feature_columns[c] for c in order])
    axes.axvline(0, color="k", linewidth=0.5)
    axes.set(title="Contributions to the raw score (pred_contrib)", xlabel="contribution")
    figure.colorbar(dots, ax=axes, label="feature value rank (grey: missing)")
    return _save(figure, path)
