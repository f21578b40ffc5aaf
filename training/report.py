"""One self-contained HTML page: the metrics table, the plots and the data lineage."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

#: Columns of the headline table, in order, with their labels.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("log_loss", "log loss"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("lift_top5", "lift@5%"),
    ("lift_top10", "lift@10%"),
    ("lift_top20", "lift@20%"),
    ("capture_top10", "capture@10%"),
    ("capture_top20", "capture@20%"),
)
_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;
text-align:right}th:first-child,td:first-child{text-align:left}.chosen{background:#eef6ee}
img{max-width:32rem;margin:.5rem}pre{background:#f6f6f6;padding:1rem;overflow-x:auto}"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.4f}"
    return escape(str(value))


def metrics_rows(table: Mapping[str, Mapping[str, Any]], part: str) -> list[list[str]]:
    rows = []
    for model, parts in table.items():
        metrics = parts.get(part)
        if metrics:
            rows.append([model, *(_cell(metrics.get(key, float("nan"))) for key, _ in HEADLINE)])
    return rows


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], chosen: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        f"<tr{' class=chosen' if row[0] == chosen else ''}>"
        + "".join(f"<td>{cell}</td>" for cell in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def calibration_rows(table: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for model, parts in table.items():
        before = parts.get("test_uncalibrated")
        if before:
            after = parts["test"]
            rows.append([model, *(_cell(m[k]) for m in (before, after) for k in ("ece", "brier"))])
    return rows


def segment_section(table: Mapping[str, Mapping[str, Any]], chosen: str) -> str:
    rows = [
        [
            f"{segment} (n={int(metrics['rows'])})",
            *(_cell(metrics.get(key, float("nan"))) for key, _ in HEADLINE),
        ]
        for segment, metrics in table[chosen]["segments"].items()
    ]
    header = ["segment", *(label for _, label in HEADLINE)]
    return f"<h2>By segment ({escape(chosen)}, test)</h2>" + html_table(header, rows)


def render_report(
    table: Mapping[str, Mapping[str, Any]],
    chosen: str,
    plots: Mapping[str, Path],
    lineage: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The report page; plots are referenced by file name, so keep them beside the page."""
    header = ["model", *(label for _, label in HEADLINE)]
    sections = [
        f"<h1>Purchase propensity: training report</h1><p>Chosen model (best validation "
        f"ROC-AUC among eligible candidates): <b>{escape(chosen)}</b>.</p>",
        "<h2>Out-of-time test</h2>" + html_table(header, metrics_rows(table, "test"), chosen),
        "<h2>Validation (selection and calibration)</h2>"
        + html_table(header, metrics_rows(table, "validation"), chosen),
        "<h2>Calibration on test: before → after</h2>"
        + html_table(
            ["model", "ECE before", "Brier before", "ECE after", "Brier after"],
            calibration_rows(table),
        ),
        segment_section(table, chosen),
        "<h2>Plots</h2>"
        + "".join(
            f'<img src="{escape(path.name)}" alt="{escape(name)}">' for name, path in plots.items()
        ),
        "<h2>Data lineage</h2><pre>"
        + escape(json.dumps(lineage, indent=2, default=str))
        + "</pre>",
    ]
    if extra:
        sections.append(
            "<h2>Details</h2><pre>" + escape(json.dumps(extra, indent=2, default=str)) + "</pre>"
        )
    body = "\n".join(sections)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Propensity training report"
        f"</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def write_report(html: str, directory: Path) -> Path:
    path = directory / "report.html"
    path.write_text(html, encoding="utf-8")
    return path
