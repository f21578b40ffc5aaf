"""``propensity uplift``: would a per-visitor uplift model rank contacts better than the lift
curve the policy uses? Judged out of time, on the holdouts the scoring runs built up.

Per channel, the units of every run whose outcomes are in (``serving.campaign.runs``) get
the features their visitors had at the run's ``as_of``, computed as the scoring model's
contract says (``features.batch``). The newest run is the validation set; the older ones
train a two-model uplift (``training.uplift``: LightGBM on the treated and on the held-out
visitors, pre-treatment features only) and the binned lift curve (``serving.campaign.lift``).
On the newest run both rank its units, and so does the score itself; each ranking's Qini
coefficient says how well it puts the persuadable first. The uplift model is worth using
where its Qini beats the lift curve's.

An evaluation, not yet a path into routing: the policy values contacts with the lift curve
whatever this finds (serving the uplift model through MLflow is the next step).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import polars as pl

from features.batch import build_features
from features.definitions import FEATURE_COLUMNS
from propensity import jobs
from propensity.campaign_rounds import CONTACTING_ROUTES
from propensity.settings import Settings
from serving.campaign.lift import fit_lift
from serving.campaign.runs import measured_units
from training.uplift import UpliftModelSettings, fit_two_model, qini_coefficient

#: Held-out units the training runs need per channel before a model is worth fitting.
MIN_CONTROL = 200


@dataclass(frozen=True)
class UpliftCheck:
    channel: str
    validation_run: str
    train_units: int
    validation_units: int
    #: Qini coefficients on the validation run: the uplift model, the lift curve, the score.
    qini_uplift: float | None
    qini_lift: float | None
    qini_score: float | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _with_features(settings: Settings, units: pl.DataFrame) -> pl.DataFrame:
    """``units`` joined with their visitors' features at their run's as_of."""
    scoring_dir = jobs.serving_paths(settings).scoring_dir
    contract = functools.cache(lambda version: jobs.model_contract(settings, version))
    frames = []
    for (run_id,), part in units.group_by("run_id"):
        summary = orjson.loads((scoring_dir / str(run_id) / "summary.json").read_bytes())
        features = build_features(
            settings.lake_dir,
            datetime.fromisoformat(summary["as_of"]),
            config=contract(str(summary["model_version"])).feature_config,
        )
        assert isinstance(features, pl.LazyFrame)
        wanted = features.filter(pl.col("visitor_id").is_in(part.get_column("visitor_id")))
        frames.append(part.join(wanted.collect(), on="visitor_id", how="inner"))
    return pl.concat(frames, how="vertical_relaxed")


def _matrix(units: pl.DataFrame) -> np.ndarray:
    return units.select(pl.col(c).cast(pl.Float64) for c in FEATURE_COLUMNS).to_numpy()


def check_uplift(settings: Settings, complete_until: datetime | None = None) -> list[UpliftCheck]:
    """One ``UpliftCheck`` per channel with units (see module doc); ``ValueError`` before two
    runs have their outcomes in."""
    window = functools.cache(lambda version: jobs.outcome_window(settings, version))
    paths = jobs.serving_paths(settings)
    policy = settings.serving.routing
    units, runs = measured_units(
        paths.scoring_dir, settings.lake_dir, policy, window, complete_until
    )
    if len(runs) < 2:
        raise ValueError(
            f"{len(runs)} scoring run(s) with outcomes in: the uplift check trains on the older "
            "runs and validates on the newest, so it needs two"
        )
    newest = sorted(runs)[-1]
    units = _with_features(settings, units)
    checks = []
    for route, name in CONTACTING_ROUTES.items():
        part = units.filter(pl.col("channel") == route)
        train = part.filter(pl.col("run_id") != newest)
        valid = part.filter(pl.col("run_id") == newest)
        control = int((~train.get_column("treated")).sum())
        if valid.is_empty() or control < MIN_CONTROL or not train.get_column("treated").any():
            checks.append(UpliftCheck(
                name, newest, train.height, valid.height, None, None, None,
                f"too few units ({control} held out in the training runs, {MIN_CONTROL} needed)",
            ))  # fmt: skip
            continue
        treated, converted = valid.get_column("treated"), valid.get_column("converted")
        model = fit_two_model(
            _matrix(train), train.get_column("treated").to_numpy(),
            train.get_column("converted").to_numpy(), UpliftModelSettings(),
        )  # fmt: skip
        lift = fit_lift(train, policy, settings.lift).channels[name]
        score = valid.get_column("score").to_numpy()
        uplift_qini, lift_qini, score_qini = (
            qini_coefficient(ranking, treated, converted)
            for ranking in (model.uplift(_matrix(valid)), lift.at(score), score)
        )
        verdict = (
            "the uplift model ranks better than the lift curve"
            if uplift_qini > lift_qini
            else "the lift curve ranks as well as the uplift model or better: keep it"
        )
        checks.append(UpliftCheck(
            name, newest, train.height, valid.height, uplift_qini, lift_qini, score_qini,
            verdict,
        ))  # fmt: skip
    return checks
