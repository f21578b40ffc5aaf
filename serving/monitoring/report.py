"""What ``propensity monitor`` leaves behind: an HTML page with PNG plots beside it, and the
headline figures as Prometheus gauges in a node-exporter textfile (``write_to_textfile``).

Plots use matplotlib's object API (``Figure``): no global state, no GUI backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib.figure import Figure
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from serving.monitoring.drift import ColumnDrift, RealisedPerformance

#: Histograms drawn for the most drifted features (besides the score).
DRIFT_PLOTS = 6
_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;
text-align:right}th:first-child,td:first-child{text-align:left}.flag{background:#fbe9e7}
img{max-width:32rem;margin:.5rem}pre{background:#f6f6f6;padding:1rem;overflow-x:auto}"""


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def psi_plot(drift: Sequence[ColumnDrift], limit: float, path: Path) -> Path:
    ordered = sorted(drift, key=lambda d: d.psi)
    figure = Figure(figsize=(6.5, max(3.0, 0.22 * len(ordered) + 1)))
    axes = figure.subplots()
    colours = ["#d84315" if "psi" in d.flags else "#607d8b" for d in ordered]
    axes.barh([d.column for d in ordered], [d.psi for d in ordered], color=colours)
    axes.axvline(limit, color="k", linestyle=":", label=f"limit {limit:g}")
    axes.set(title="Population stability index vs training reference", xlabel="PSI")
    axes.tick_params(axis="y", labelsize=7)
    axes.legend(loc="lower right")
    return _save(figure, path)


def histogram_plot(
    column: str, reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64], path: Path
) -> Path:
    both = np.concatenate([reference, current])
    finite = both[np.isfinite(both)]
    figure = Figure(figsize=(5.0, 3.6))
    axes = figure.subplots()
    if finite.size:
        low, high = np.quantile(finite, [0.0, 0.99])
        edges = np.linspace(low, high if high > low else low + 1, 31)
        for name, values in (("reference", reference), ("current", current)):
            shown = np.clip(values[np.isfinite(values)], low, edges[-1])
            axes.hist(shown, bins=edges.tolist(), density=True, histtype="step", label=name)
        axes.legend()
    axes.set(title=column, xlabel=f"{column} (clipped at the 99th percentile)", ylabel="density")
    return _save(figure, path)


def reliability_plot(realised: RealisedPerformance, path: Path) -> Path:
    figure = Figure(figsize=(5.0, 4.2))
    axes = figure.subplots()
    means = [m for m, _, _ in realised.reliability]
    rates = [r for _, r, _ in realised.reliability]
    axes.plot([0, 1], [0, 1], "k:", label="perfect")
    axes.plot(means, rates, "o-", label=f"run {realised.run_id[:24]}")
    axes.set(
        title=f"Realised calibration (ECE {realised.ece:.4f})",
        xlabel="mean score in bin",
        ylabel="observed purchase rate",
    )
    axes.legend(loc="upper left")
    return _save(figure, path)


def write_plots(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    drift: Sequence[ColumnDrift],
    psi_limit: float,
    realised: RealisedPerformance | None,
    directory: Path,
) -> dict[str, Path]:
    """PSI per column, score histograms, the most drifted features, realised calibration."""
    plots = {"psi": psi_plot(drift, psi_limit, directory / "psi.png")}
    numeric = [d for d in drift if reference[d.column].dtype.is_numeric()]
    worst = sorted(numeric, key=lambda d: (d.column != "score", -d.psi))[: DRIFT_PLOTS + 1]
    for item in worst:
        plots[item.column] = histogram_plot(
            item.column,
            reference[item.column].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
            current[item.column].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
            directory / f"hist_{item.column}.png",
        )
    if realised is not None and realised.reliability:
        plots["reliability"] = reliability_plot(realised, directory / "reliability.png")
    return plots


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.4f}"
    return escape(str(value))


def drift_section(drift: Sequence[ColumnDrift]) -> str:
    header = [
        "column",
        "PSI",
        "missing (reference)",
        "missing (current)",
        "new categories",
        "flags",
    ]
    rows = "".join(
        f"<tr{' class=flag' if d.flags else ''}>"
        + "".join(
            f"<td>{_cell(v)}</td>"
            for v in (
                d.column,
                d.psi,
                d.missing_reference,
                d.missing_current,
                d.new_category_share,
                ", ".join(d.flags),
            )
        )
        + "</tr>"
        for d in sorted(drift, key=lambda d: -d.psi)
    )
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{rows}</table>"


def render_report(
    summary: Mapping[str, Any], drift: Sequence[ColumnDrift], plots: Mapping[str, Path]
) -> str:
    """The monitoring page; plots are referenced by file name, so keep them beside it."""
    flagged = [d.column for d in drift if d.flags]
    headline = {k: v for k, v in summary.items() if k not in ("columns", "realised")}
    sections = [
        "<h1>Purchase propensity: monitoring report</h1>",
        f"<p>Flagged: <b>{escape(', '.join(flagged) or 'nothing')}</b>.</p>",
        "<pre>" + escape(json.dumps(headline, indent=2, default=str)) + "</pre>",
        "<h2>Drift against the training reference</h2>" + drift_section(drift),
    ]
    realised = summary.get("realised")
    if realised:
        sections.append(
            "<h2>Realised performance of an earlier run</h2><pre>"
            + escape(json.dumps(realised, indent=2, default=str))
            + "</pre>"
        )
    else:
        sections.append("<h2>Realised performance</h2><p>No scoring run has its outcomes yet.</p>")
    sections.append(
        "<h2>Plots</h2>"
        + "".join(f'<img src="{escape(p.name)}" alt="{escape(n)}">' for n, p in plots.items())
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Propensity monitoring</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )


def write_gauges(
    path: Path,
    drift: Sequence[ColumnDrift],
    realised: RealisedPerformance | None,
    timestamp: float,
) -> Path:
    """The headline figures as a Prometheus textfile (atomically replaced)."""
    registry = CollectorRegistry()
    psi = Gauge(
        "propensity_monitor_psi",
        "PSI against the training reference",
        ["column"],
        registry=registry,
    )
    missing = Gauge(
        "propensity_monitor_missing_share", "share of missing values", ["column"], registry=registry
    )
    for item in drift:
        psi.labels(item.column).set(item.psi)
        missing.labels(item.column).set(item.missing_current)
    Gauge(
        "propensity_monitor_flagged_columns", "columns beyond a drift limit", registry=registry
    ).set(sum(1 for d in drift if d.flags))
    Gauge(
        "propensity_monitor_last_run_timestamp_seconds",
        "when the monitor last ran",
        registry=registry,
    ).set(timestamp)
    if realised is not None:
        Gauge(
            "propensity_monitor_realised_roc_auc",
            "ROC-AUC of an earlier run's scores",
            registry=registry,
        ).set(realised.roc_auc)
        Gauge(
            "propensity_monitor_realised_ece",
            "calibration error of an earlier run",
            registry=registry,
        ).set(realised.ece)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    return path
