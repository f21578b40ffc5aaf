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

``with_uplift_ranking`` makes it a path into routing: ``propensity lift`` (and the lift
step of ``propensity retrain``) ranks a channel by its uplift model where the model won on
the newest run, registering the model in MLflow for serving to load.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import polars as pl

from contract.uplift import uplift_spec
from features.batch import build_features
from features.definitions import FEATURE_COLUMNS
from propensity import jobs
from propensity.campaign_rounds import CONTACTING_ROUTES
from propensity.settings import Settings
from serving.campaign.lift import LiftSettings, fit_lift, lift_by_key, ranked_by_uplift
from serving.campaign.runs import measured_units
from serving.model.registry import REGISTRY_URI, alias_version
from serving.policy.lift import ChannelLift, LiftModel
from serving.policy.routing import RoutingPolicy
from training.uplift import (
    TwoModel,
    UpliftModelSettings,
    cross_fit,
    fit_two_model,
    qini_coefficient,
)

if TYPE_CHECKING:
    from contract.model import ModelContract
    from features.definitions import FeatureConfig

#: Held-out units the training runs need per channel before a model is worth fitting.
MIN_CONTROL = 200
#: The column of the units that carries their cross-fitted uplift prediction.
UPLIFT_KEY = "uplift"


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


def _with_features(
    settings: Settings, units: pl.DataFrame, config: FeatureConfig | None = None
) -> pl.DataFrame:
    """``units`` joined with their visitors' features at their run's as_of, computed with
    ``config`` (default: as the model that scored the run computed them)."""
    scoring_dir = jobs.serving_paths(settings).scoring_dir
    contract = functools.cache(lambda version: jobs.model_contract(settings, version))
    frames = []
    for (run_id,), part in units.group_by("run_id"):
        summary = orjson.loads((scoring_dir / str(run_id) / "summary.json").read_bytes())
        features = build_features(
            settings.lake_dir,
            datetime.fromisoformat(summary["as_of"]),
            config=config or contract(str(summary["model_version"])).feature_config,
        )
        assert isinstance(features, pl.LazyFrame)
        wanted = features.filter(pl.col("visitor_id").is_in(part.get_column("visitor_id")))
        frames.append(part.join(wanted.collect(), on="visitor_id", how="inner"))
    return pl.concat(frames, how="vertical_relaxed")


def _matrix(units: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return units.select(pl.col(c).cast(pl.Float64) for c in columns).to_numpy()


def _judge(
    name: str,
    part: pl.DataFrame,
    newest: str,
    policy: RoutingPolicy,
    lift_settings: LiftSettings,
    columns: Sequence[str],
) -> tuple[UpliftCheck, TwoModel | None]:
    """Train on the older runs' units of a channel, rank the newest run's by the uplift
    model, the lift curve and the score; the check, and the model when it could be fitted."""
    train = part.filter(pl.col("run_id") != newest)
    valid = part.filter(pl.col("run_id") == newest)
    control = int((~train.get_column("treated")).sum())
    if valid.is_empty() or control < MIN_CONTROL or not train.get_column("treated").any():
        return UpliftCheck(
            name, newest, train.height, valid.height, None, None, None,
            f"too few units ({control} held out in the training runs, {MIN_CONTROL} needed)",
        ), None  # fmt: skip
    treated, converted = valid.get_column("treated"), valid.get_column("converted")
    model = fit_two_model(
        _matrix(train, columns), train.get_column("treated").to_numpy(),
        train.get_column("converted").to_numpy(), UpliftModelSettings(),
    )  # fmt: skip
    lift = fit_lift(train, policy, lift_settings).channels[name]
    score = valid.get_column("score").to_numpy()
    uplift_qini, lift_qini, score_qini = (
        qini_coefficient(ranking, treated, converted)
        for ranking in (model.uplift(_matrix(valid, columns)), lift.at(score), score)
    )
    verdict = (
        "the uplift model ranks better than the lift curve"
        if uplift_qini > lift_qini
        else "the lift curve ranks as well as the uplift model or better: keep it"
    )
    check = UpliftCheck(
        name, newest, train.height, valid.height, uplift_qini, lift_qini, score_qini, verdict
    )
    return check, model


def _measured(
    settings: Settings, complete_until: datetime | None
) -> tuple[pl.DataFrame, list[str]]:
    window = functools.cache(lambda version: jobs.outcome_window(settings, version))
    paths = jobs.serving_paths(settings)
    return measured_units(
        paths.scoring_dir, settings.lake_dir, settings.serving.routing, window, complete_until
    )


def check_uplift(settings: Settings, complete_until: datetime | None = None) -> list[UpliftCheck]:
    """One ``UpliftCheck`` per channel with units (see module doc); ``ValueError`` before two
    runs have their outcomes in."""
    units, runs = _measured(settings, complete_until)
    if len(runs) < 2:
        raise ValueError(
            f"{len(runs)} scoring run(s) with outcomes in: the uplift check trains on the older "
            "runs and validates on the newest, so it needs two"
        )
    newest = sorted(runs)[-1]
    units = _with_features(settings, units)
    policy = settings.serving.routing
    return [
        _judge(name, units.filter(pl.col("channel") == route), newest, policy, settings.lift,
               FEATURE_COLUMNS)[0]
        for route, name in CONTACTING_ROUTES.items()
    ]  # fmt: skip


def with_uplift_ranking(
    settings: Settings, model: LiftModel, units: pl.DataFrame, runs: Sequence[str]
) -> tuple[LiftModel, list[UpliftCheck]]:
    """``model`` with every channel whose uplift model out-ranks the lift curve on the newest
    run (validation Qini, trained on the older runs) ranked by it: the model is refitted on
    every run, registered in MLflow, and the channel's effect measured by band of its
    cross-fitted prediction (``serving.campaign.lift.lift_by_key``). Features are the
    champion's inputs, computed as its contract says, so serving can predict with them."""
    if len(runs) < 2 or units.is_empty():
        return model, []
    uri = settings.serving.model_uri
    paths = jobs.serving_paths(settings)
    matched = REGISTRY_URI.match(uri)
    if matched is None:
        return model, []
    version = alias_version(uri, paths.tracking_uri) or matched["version"]
    if version is None:
        return model, []
    contract = jobs.model_contract(settings, str(version))
    if contract.feature_config is None:
        return model, []
    featured = _with_features(settings, units, contract.feature_config)
    newest = sorted(runs)[-1]
    policy = settings.serving.routing
    ranked: dict[str, ChannelLift] = {}
    checks = []
    for route, name in CONTACTING_ROUTES.items():
        part = featured.filter(pl.col("channel") == route)
        check, judged = _judge(name, part, newest, policy, settings.lift, contract.feature_columns)
        checks.append(check)
        if judged is None or check.qini_uplift is None or check.qini_lift is None:
            continue
        if check.qini_uplift <= check.qini_lift:
            continue
        x = _matrix(part, contract.feature_columns)
        treated = part.get_column("treated").to_numpy()
        converted = part.get_column("converted").to_numpy()
        folds = cross_fit(x, treated, converted, UpliftModelSettings())
        keyed = part.with_columns(pl.Series(UPLIFT_KEY, folds.uplift))
        lift = lift_by_key(keyed, name, UPLIFT_KEY, policy, settings.lift)
        final = fit_two_model(x, treated, converted, UpliftModelSettings())
        registered = _register(settings, name, final, contract, check, part, runs)
        ranked[name] = replace(lift, uplift_model=registered)
    return (ranked_by_uplift(model, ranked) if ranked else model), checks


def _register(
    settings: Settings,
    channel: str,
    model: TwoModel,
    contract: ModelContract,
    check: UpliftCheck,
    units: pl.DataFrame,
    runs: Sequence[str],
) -> str:
    """Log the uplift model in an MLflow run of its own and register it as
    ``<champion's name>-uplift-<channel>``; its registry URI."""
    import mlflow

    from training.tracking import client_for, experiment_id, log_uplift_model, resolve_store

    assert contract.feature_config is not None
    spec = uplift_spec(channel, contract.feature_columns, contract.feature_config, check.to_dict())
    example = (
        units.head(5)
        .select(pl.col(c).cast(pl.Float64) for c in contract.feature_columns)
        .to_pandas()
    )
    matched = REGISTRY_URI.match(settings.serving.model_uri)
    assert matched is not None  # with_uplift_ranking checked it
    name = f"{matched['name']}-uplift-{channel}"
    store = resolve_store(settings.data_dir)
    client = client_for(store)
    with mlflow.start_run(experiment_id=experiment_id(client, store), run_name=name):
        mlflow.log_params({"channel": channel, "runs": ",".join(runs), "units": units.height})
        mlflow.log_metrics({
            k: float(v) for k, v in (("qini_uplift", check.qini_uplift),
                                     ("qini_lift", check.qini_lift)) if v is not None
        })  # fmt: skip
        return log_uplift_model(
            spec,
            model.treated_model.booster_.model_to_string(),
            model.control_model.booster_.model_to_string(),
            example,
            name,
        )
