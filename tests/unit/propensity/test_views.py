"""What ``propensity train`` prints (issue 25): the choice is made on validation, so the
table shows validation beside test, names the rule, and fits an 80-column terminal."""

from __future__ import annotations

from rich.console import Console

from propensity.views import metrics_table
from training.evaluation import SELECTION_RULE

METRICS = {
    "lightgbm": {
        "validation": {"roc_auc": 0.6610, "log_loss": 0.0912},
        "test": {
            "roc_auc": 0.6840,
            "pr_auc": 0.05,
            "log_loss": 0.1,
            "ece": 0.01,
            "lift_top10": 3.1,
        },
    },
    "logistic": {
        "validation": {"roc_auc": 0.7020, "log_loss": 0.0900},
        "test": {
            "roc_auc": 0.6310,
            "pr_auc": 0.04,
            "log_loss": 0.1,
            "ece": 0.02,
            "lift_top10": 2.9,
        },
    },
    "popularity": {"validation": {"roc_auc": 0.55}, "test": {"roc_auc": 0.5400}},
}


def _rendered(width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(metrics_table(METRICS, "logistic"))
    return console.export_text()


def test_train_shows_validation_beside_test_and_names_the_rule() -> None:
    text = _rendered(120)
    logistic = next(line for line in text.splitlines() if "logistic" in line)
    assert "0.702" in logistic and "0.631" in logistic  # validation, then test
    assert "val" in text and "test" in text
    assert " ".join(SELECTION_RULE.split()) in " ".join(text.split())


def test_the_table_fits_80_columns_without_cutting_a_header() -> None:
    text = _rendered(80)
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
