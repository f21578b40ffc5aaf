"""The metrics table of every candidate, segment breakdowns, and model selection.

Table layout (JSON-able): ``{model: {"validation": metrics, "test": metrics,
"test_uncalibrated": metrics | None, "segments": {segment: metrics}}}`` where ``metrics`` is
``training.metrics.evaluate_probabilities``. Segments are reporting only: contactability is
joined here and never reaches a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from training.candidates import Candidate
from training.data import Split
from training.metrics import evaluate_probabilities

Mask = npt.NDArray[np.bool_]
SUBSCRIBED = "subscribed"


def returning_mask(history: pl.DataFrame, part: Split, time_col: str = "as_of") -> Mask:
    """True for rows whose visitor appears in a snapshot with an earlier cutoff: a visitor
    already seen by the shop before this window, as opposed to a new one."""
    earliest = history.group_by("visitor_id").agg(pl.col(time_col).min().alias("_first"))
    rows = pl.DataFrame({"visitor_id": part.visitor_id, "_as_of": part.as_of}).with_columns(
        pl.col("visitor_id").cast(history.schema["visitor_id"]),
        pl.col("_as_of").cast(history.schema[time_col]),
    )
    joined = rows.join(earliest, on="visitor_id", how="left", maintain_order="left")
    return joined.select(pl.col("_first") < pl.col("_as_of")).to_series().to_numpy()


def contactable_mask(contacts: pl.DataFrame, visitor_ids: npt.ArrayLike) -> Mask:
    """True where the visitor's ``email_status`` is subscribed (unknown visitors: False)."""
    subscribed = contacts.filter(pl.col("email_status") == SUBSCRIBED).get_column("visitor_id")
    ids = pl.Series(np.asarray(visitor_ids)).cast(pl.String)
    return ids.is_in(subscribed.cast(pl.String).implode()).to_numpy()


def segment_masks(
    history: pl.DataFrame, test: Split, contacts: pl.DataFrame | None, time_col: str
) -> dict[str, Mask]:
    returning = returning_mask(history, test, time_col)
    masks = {"returning": returning, "new": ~returning}
    if contacts is not None:
        email = contactable_mask(contacts, test.visitor_id)
        masks |= {"email_contactable": email, "not_email_contactable": ~email}
    return masks


def candidate_metrics(
    candidate: Candidate, validation: Split, test: Split, masks: Mapping[str, Mask]
) -> dict[str, Any]:
    probability = candidate.probability("test")
    own = candidate.uncalibrated("test")
    return {
        "validation": evaluate_probabilities(validation.label, candidate.probability("validation")),
        "test": evaluate_probabilities(test.label, probability),
        "test_uncalibrated": None if own is None else evaluate_probabilities(test.label, own),
        "segments": {
            name: evaluate_probabilities(test.label[mask], probability[mask])
            for name, mask in masks.items()
            if mask.any()
        },
    }


def metrics_table(
    candidates: Sequence[Candidate], validation: Split, test: Split, masks: Mapping[str, Mask]
) -> dict[str, dict[str, Any]]:
    return {c.name: candidate_metrics(c, validation, test, masks) for c in candidates}


#: ``select_candidate`` in words, for the CLI and the report.
SELECTION_RULE = (
    "chosen: the highest validation AUC among lightgbm and logistic (ties: the lower log "
    "loss); baselines are for comparison; the test set plays no part in the choice"
)


def select_candidate(
    candidates: Sequence[Candidate], table: Mapping[str, Mapping[str, Any]]
) -> Candidate:
    """The eligible candidate with the highest validation ROC-AUC (ties: lower log loss).

    ROC-AUC is untouched by calibration, which was fitted on validation, so it compares the
    models' ranking without that optimism; the test set plays no part.
    """
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        raise ValueError("no eligible candidate (lightgbm or logistic) was trained")

    def key(candidate: Candidate) -> tuple[float, float]:
        validation = table[candidate.name]["validation"]
        auc = validation["roc_auc"]
        return (-np.inf if np.isnan(auc) else auc, -validation["log_loss"])

    return max(eligible, key=key)


def reference_metrics(
    label: npt.ArrayLike, reference: npt.ArrayLike, model_auc: float
) -> dict[str, float]:
    """Metrics of a known true propensity (simulated data) and the model's share of its AUC."""
    truth = evaluate_probabilities(label, reference)
    return {
        "true_roc_auc": truth["roc_auc"],
        "true_log_loss": truth["log_loss"],
        "fraction_of_true_auc": model_auc / truth["roc_auc"],
    }
