"""Learning the lift of each channel from past runs (``propensity lift`` and the lift step
of ``propensity retrain``): the units every run whose outcomes are in teaches, the fit
(``serving.campaign.lift``), ranked by an uplift model where one wins
(``propensity.uplift_check``), saved as the live fit.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from propensity import jobs
from propensity.settings import Settings
from propensity.uplift_check import with_uplift_ranking
from serving.policy.lift import LiftModel

if TYPE_CHECKING:
    from serving.campaign.lift import LiftGate

log = logging.getLogger(__name__)


def _lift_units(
    settings: Settings, complete_until: datetime | None
) -> tuple[pl.DataFrame, list[str]]:
    """What every run whose outcomes are in teaches (``serving.campaign.runs.measured_units``)."""
    from serving.campaign.runs import measured_units

    window = functools.cache(lambda version: jobs.outcome_window(settings, version))
    scoring_dir = jobs.serving_paths(settings).scoring_dir
    return measured_units(
        scoring_dir, settings.lake_dir, settings.serving.routing, window, complete_until
    )


def fitted_lift(settings: Settings, complete_until: datetime | None = None) -> LiftModel:
    """The lift of each channel learned from every run whose outcomes are in (the lake being
    complete up to ``complete_until``, default its latest event), saved as the live fit
    (``serving.campaign``); ``ValueError`` when no run has taught anything yet."""
    from serving.campaign.fits import save_fit
    from serving.campaign.lift import fit_lift

    units, runs = _lift_units(settings, complete_until)
    if units.is_empty():
        raise ValueError(
            "no scoring run has its outcomes in yet: score, let the outcome window pass (on a "
            "simulated shop: propensity respond, then ingest its events), then propensity lift"
        )
    model = _ranked(settings, fit_lift(units, settings.serving.routing, settings.lift, runs),
                    units, runs)  # fmt: skip
    save_fit(model, jobs.serving_paths(settings).outputs_dir)
    return model


def _ranked(
    settings: Settings, model: LiftModel, units: pl.DataFrame, runs: list[str]
) -> LiftModel:
    """``model`` ranked by uplift where an uplift model wins (``LIFT__RANK_BY_UPLIFT``)."""
    if not settings.lift.rank_by_uplift:
        return model
    ranked, checks = with_uplift_ranking(settings, model, units, runs)
    for check in checks:
        log.info("uplift %s: %s", check.channel, check.verdict)
    return ranked


def gated_lift(settings: Settings) -> tuple[LiftGate, LiftModel | None]:
    """``propensity retrain``'s refit of the lift: through ``serving.campaign.lift.gate_lift``
    (out of time, against the live fit); the new fit, saved as live, when it passes."""
    from serving.campaign.fits import latest_fit, save_fit
    from serving.campaign.lift import fit_lift, gate_lift

    units, runs = _lift_units(settings, None)
    outputs = jobs.serving_paths(settings).outputs_dir
    policy = settings.serving.routing
    gate = gate_lift(units, latest_fit(outputs), policy, settings.lift)
    if not gate.promoted:
        return gate, None
    model = _ranked(settings, fit_lift(units, policy, settings.lift, runs), units, runs)
    save_fit(model, outputs)
    return gate, model
