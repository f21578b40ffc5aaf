"""Fit every candidate on the training part and score validation and test.

A candidate's *raw* score ranks visitors; its calibrator, fitted on validation, turns the
raw score into a probability. LightGBM and logistic regression can become the challenger
(they score a feature table alone); the rule and BG/NBD are baselines reported beside them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from contract.calibration import apply_calibrator
from contract.scoring import FORMAT_VERSION, Scorer
from training.baselines import fit_logistic, logistic_spec, recency_frequency_score
from training.bgnbd import fit_bgnbd, rfm_summary, score_visitors
from training.boosting import fit_booster, gain_importance
from training.calibration import fit_calibrator
from training.data import FloatArray, Split, TimeSplit, utc_datetime
from training.settings import TrainingSettings
from training.tuning import tune_lightgbm

log = logging.getLogger(__name__)
SCORED_PARTS: tuple[str, ...] = ("validation", "test")


@dataclass(frozen=True)
class Candidate:
    name: str
    raw: dict[str, FloatArray]  # "validation"/"test" -> raw scores
    raw_is_probability: bool = False  # BG/NBD: already a probability, left uncalibrated
    uncalibrated_link: bool = False  # raw is a log-odds: sigmoid(raw) is the model's own p
    spec: dict[str, Any] | None = None  # scoring spec without calibrator; None: baseline only
    booster_text: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    calibrator: dict[str, Any] | None = None

    @property
    def eligible(self) -> bool:
        return self.spec is not None

    def probability(self, part: str) -> FloatArray:
        if self.raw_is_probability or self.calibrator is None:
            return self.raw[part]
        return apply_calibrator(self.calibrator, self.raw[part])

    def uncalibrated(self, part: str) -> FloatArray | None:
        """The model's own probability before calibration, where it has one."""
        if self.raw_is_probability:
            return self.raw[part]
        if self.uncalibrated_link:
            return np.asarray(1.0 / (1.0 + np.exp(-self.raw[part])))
        return None

    def scoring_spec(self) -> dict[str, Any]:
        if self.spec is None or self.calibrator is None:
            raise ValueError(f"{self.name} has no calibrated scoring spec")
        return {**self.spec, "calibrator": self.calibrator}


def _scored(scorer: Scorer, split: TimeSplit) -> dict[str, FloatArray]:
    return {p: scorer.raw_score(split.parts()[p].features) for p in SCORED_PARTS}


def lightgbm_candidate(split: TimeSplit, settings: TrainingSettings) -> Candidate:
    train = (split.train.features, split.train.label)
    validation = (split.validation.features, split.validation.label)
    tuned = tune_lightgbm(train, validation, split.feature_columns, settings)
    booster = fit_booster(train, validation, split.feature_columns, settings, tuned)
    text = booster.model_to_string(num_iteration=booster.best_iteration)
    spec = {
        "format_version": FORMAT_VERSION,
        "kind": "lightgbm",
        "feature_columns": list(split.feature_columns),
        "booster_file": "booster.txt",
    }
    scorer = Scorer.from_parts({**spec, "calibrator": {}}, text)
    info = {
        "best_iteration": booster.best_iteration,
        "tuned_params": tuned,
        "gain_importance": gain_importance(booster),
    }
    return Candidate(
        "lightgbm",
        _scored(scorer, split),
        uncalibrated_link=True,
        spec=spec,
        booster_text=text,
        info=info,
    )


def logistic_candidate(split: TimeSplit, settings: TrainingSettings) -> Candidate:
    """Logistic regression; it cannot take monotone constraints, so a fit whose coefficient
    goes against a configured business direction is reported but not eligible."""
    pipeline = fit_logistic(split.train.features, split.train.label, settings.seed)
    spec = logistic_spec(pipeline, split.feature_columns)
    scorer = Scorer.from_parts({**spec, "calibrator": {}})
    columns, coef = list(split.feature_columns), spec["logistic"]["coef"]
    against = [
        name
        for name, direction in settings.monotone_constraints.items()
        if name in columns and coef[columns.index(name)] * direction < 0
    ]
    if against:
        log.info("logistic regression not eligible: coefficients against %s", against)
        info = {"ineligible": f"coefficients against the monotone constraints on {against}"}
        return Candidate("logistic", _scored(scorer, split), uncalibrated_link=True, info=info)
    return Candidate("logistic", _scored(scorer, split), uncalibrated_link=True, spec=spec)


def rule_candidate(split: TimeSplit, settings: TrainingSettings) -> Candidate | None:
    columns = list(split.feature_columns)
    needed = (settings.recency_column, settings.frequency_column)
    if not set(needed) <= set(columns):
        log.info("recency-frequency rule skipped: features %s not all present", needed)
        return None
    recency, frequency = (columns.index(c) for c in needed)

    def score(part: Split) -> FloatArray:
        return recency_frequency_score(part.features[:, recency], part.features[:, frequency])

    raw = {p: score(split.parts()[p]) for p in SCORED_PARTS}
    return Candidate("rule", raw, info={"recency": needed[0], "frequency": needed[1]})


def bgnbd_candidate(
    split: TimeSplit, events: pl.DataFrame | pl.LazyFrame, horizon: timedelta
) -> Candidate:
    """BG/NBD fitted, per scored part, on the purchase history before that part's cutoff
    (unsupervised: labels are never used), scoring P(purchase within ``horizon``)."""
    raw: dict[str, FloatArray] = {}
    info: dict[str, Any] = {}
    for part_name in SCORED_PARTS:
        part = split.parts()[part_name]
        scores = np.empty(part.rows, dtype=np.float64)
        for cutoff in np.unique(part.as_of):
            rows = part.as_of == cutoff
            as_of = utc_datetime(cutoff)
            summary = rfm_summary(events, as_of)
            params = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
            scores[rows] = score_visitors(params, summary, part.visitor_id[rows], horizon)
            info[f"{part_name}_{as_of.date()}"] = params.to_dict()
        raw[part_name] = scores
    return Candidate("bgnbd", raw, raw_is_probability=True, info={"params": info})


def calibrated(candidate: Candidate, label: npt.ArrayLike, settings: TrainingSettings) -> Candidate:
    """The candidate with a calibrator fitted on its validation scores (BG/NBD: as is)."""
    if candidate.raw_is_probability:
        return candidate
    calibrator = fit_calibrator(
        candidate.raw["validation"], label, settings.calibration, settings.isotonic_tail_share
    )
    return replace(candidate, calibrator=calibrator)


def purchase_only(events: pl.DataFrame | pl.LazyFrame) -> bool:
    """True when every event is a purchase (a refund also counts as purchase history)."""
    others = events.lazy().filter(~pl.col("event_name").is_in(["purchase", "refund"]))
    return bool(others.select(pl.len()).collect().item() == 0)


def fit_candidates(
    split: TimeSplit,
    settings: TrainingSettings,
    events: pl.DataFrame | pl.LazyFrame | None = None,
    horizon: timedelta | None = None,
) -> list[Candidate]:
    """Every candidate, calibrated on validation; BG/NBD too when ``events`` are given and
    purchase-only (the CLI can always pass them; behaviour-rich logs skip it)."""
    fitters = {"lightgbm": lightgbm_candidate, "logistic": logistic_candidate}
    fitted = [fitters[name](split, settings) for name in settings.candidates]
    rule = rule_candidate(split, settings)
    fitted += [rule] if rule is not None else []
    if events is not None and purchase_only(events):
        if horizon is None:
            raise ValueError("BG/NBD needs the label horizon")
        fitted.append(bgnbd_candidate(split, events, horizon))
    elif events is not None:
        log.info("BG/NBD skipped: the events are not purchase-only")
    return [calibrated(c, split.validation.label, settings) for c in fitted]
