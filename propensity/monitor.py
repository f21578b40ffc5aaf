"""``propensity monitor``: the latest scoring population against the model's training reference,
and the realised performance of the latest run whose outcomes have arrived.

Wiring only: the reference is the sample of test features and scores that training logged
with the model's run (``training.tracking.REFERENCE_ARTIFACT``); the current population is
the scoring run's scores joined with the features as of the run's ``as_of``, recomputed from
the lake with the one feature definition and the scoring model's feature configuration (its
contract), as the run computed them. Realised performance counts outcomes over the label
window of the model that scored that run. The arithmetic is ``serving.monitoring.drift``; the page
and the gauges are ``serving.monitoring.report``.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import orjson
import polars as pl

from features.batch import build_features, collect
from features.definitions import FeatureConfig
from features.lake import scan_events
from propensity import jobs
from propensity.jobs import serving_paths
from propensity.settings import Settings
from serving.campaign.runs import observed_outcomes, run_dir_of
from serving.monitoring.drift import (
    SCORE,
    ColumnDrift,
    RealisedPerformance,
    drift_table,
    realised_performance,
    sample,
)
from serving.monitoring.report import render_report, write_gauges, write_plots
from training.tracking import (
    EXPERIMENT,
    REFERENCE_ARTIFACT,
    client_for,
    experiment_id,
    resolve_store,
)

log = logging.getLogger(__name__)
MONITOR_EXPERIMENT = f"{EXPERIMENT}-monitoring"


@dataclass(frozen=True)
class MonitorResult:
    run_id: str
    as_of: datetime
    model_version: str
    reference_rows: int
    current_rows: int
    flagged: list[str]
    columns: list[ColumnDrift]
    realised: RealisedPerformance | None
    report: Path
    textfile: Path
    mlflow_run_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "as_of": self.as_of.isoformat(),
            "model_version": self.model_version, "reference_rows": self.reference_rows,
            "current_rows": self.current_rows, "flagged": self.flagged,
            "score_psi": next((c.psi for c in self.columns if c.column == SCORE), None),
            "columns": [c.to_dict() for c in self.columns],
            "realised": None if self.realised is None else self.realised.to_dict(),
            "report": str(self.report), "textfile": str(self.textfile),
            "mlflow_run_id": self.mlflow_run_id, **self.extra,
        }  # fmt: skip


def model_name(model_uri: str) -> str:
    """``models:/propensity@champion`` or ``models:/propensity/3`` -> ``propensity``."""
    if not model_uri.startswith("models:/"):
        raise ValueError(f"{model_uri}: expected a registered model URI (models:/name@alias)")
    return model_uri.removeprefix("models:/").split("@")[0].split("/")[0]


def load_reference(settings: Settings, version: str) -> pl.DataFrame:
    """The features and scores logged by the training run of model ``version``."""
    client = client_for(resolve_store(settings.data_dir))
    run_id = client.get_model_version(model_name(settings.serving.model_uri), version).run_id
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=folder
            )
            return pl.read_parquet(path)
    except (OSError, mlflow.exceptions.MlflowException) as problem:
        raise FileNotFoundError(
            f"model v{version} (run {run_id}) has no monitoring reference "
            f"({REFERENCE_ARTIFACT}): it was trained before monitoring existed; retrain it"
        ) from problem


def current_population(
    settings: Settings, scores: pl.DataFrame, as_of: datetime, config: FeatureConfig
) -> pl.DataFrame:
    """A bounded sample of the run's visitors: features as of the run, computed with the
    scoring model's ``config`` (what it saw), and their score."""
    picked = sample(
        scores.select("visitor_id", SCORE),
        settings.monitoring.sample_rows,
        settings.monitoring.seed,
    )
    # Features depend on each visitor's own events only: compute them for the sample alone.
    window = scan_events(settings.lake_dir, start=config.window_start(as_of), end=as_of)
    ids = picked.get_column("visitor_id").implode()
    events = window.filter(pl.col("visitor_id").is_in(ids))
    features = collect(build_features(events, as_of, config=config))
    return picked.join(features, on="visitor_id", how="left")


def scored_population(settings: Settings, scores: pl.DataFrame) -> pl.DataFrame:
    """``current_population`` of a run (``scores``: its scores file), with the feature
    configuration of the model version that scored it."""
    as_of: datetime = scores.get_column("as_of")[0]
    version = str(scores.get_column("model_version")[0])
    config = jobs.model_contract(settings, version).serving_config()
    return current_population(settings, scores, as_of, config)


def labelled_run(
    settings: Settings, window_of: Callable[[str], timedelta]
) -> tuple[str, pl.DataFrame, timedelta] | None:
    """The latest scoring run whose outcome window (``window_of`` its model version) has
    fully passed in the lake, with its scores and ``converted`` (0/1) per visitor, and that
    window."""
    latest = scan_events(settings.lake_dir).select(pl.col("event_time").max()).collect().item()
    scoring_dir = serving_paths(settings).scoring_dir
    runs = []
    for summary in scoring_dir.glob("*/summary.json"):
        run = orjson.loads(summary.read_bytes())
        as_of, horizon = datetime.fromisoformat(run["as_of"]), window_of(run["model_version"])
        if latest is not None and as_of + horizon <= latest:
            runs.append((as_of, summary.parent, horizon))
    if not runs:
        return None
    as_of, folder, horizon = max(runs)
    scores = pl.read_parquet(folder / "scores.parquet", columns=["visitor_id", SCORE])
    outcomes = observed_outcomes(settings.lake_dir, as_of, horizon).select(
        "visitor_id", "converted"
    )
    joined = scores.join(outcomes, on="visitor_id", how="left")
    return folder.name, joined.with_columns(pl.col("converted").fill_null(0)), horizon


def monitor(settings: Settings, *, run_id: str | None = None) -> MonitorResult:
    """Compare, report, log to MLflow and write the gauges (see module doc)."""
    config = settings.monitoring
    folder = run_dir_of(serving_paths(settings).scoring_dir, run_id)
    scores = pl.read_parquet(folder / "scores.parquet")
    if scores.is_empty():
        raise ValueError(f"{folder}: the run scored nobody")
    as_of: datetime = scores.get_column("as_of")[0]
    version = str(scores.get_column("model_version")[0])
    reference = sample(load_reference(settings, version), config.sample_rows, config.seed)
    current = scored_population(settings, scores)
    columns = [c for c in reference.columns if c not in ("as_of", SCORE)] + [SCORE]
    drift = drift_table(reference, current, columns, config)
    labelled = labelled_run(settings, functools.cache(lambda v: jobs.outcome_window(settings, v)))
    realised, horizon = None, jobs.outcome_window(settings, version)
    if labelled is not None:
        name, outcomes, horizon = labelled
        realised = realised_performance(
            name, outcomes["converted"], outcomes[SCORE], config.calibration_bins
        )
    out_dir = settings.data_dir / "monitoring" / folder.name
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(reference, current, drift, config.psi_limit, realised, out_dir)
    result = MonitorResult(
        run_id=folder.name, as_of=as_of, model_version=version,
        reference_rows=reference.height, current_rows=current.height,
        flagged=[d.column for d in drift if d.flags], columns=drift, realised=realised,
        report=out_dir / "report.html",
        textfile=config.textfile or settings.data_dir / "monitoring" / "propensity.prom",
        mlflow_run_id="", extra={"horizon_days": horizon.total_seconds() / 86_400},
    )  # fmt: skip
    result.report.write_text(render_report(result.to_dict(), drift, plots), encoding="utf-8")
    logged = _log_to_mlflow(settings, result)
    write_gauges(result.textfile, drift, realised, datetime.now(UTC).timestamp())
    return MonitorResult(**{**result.__dict__, "mlflow_run_id": logged})


def _log_to_mlflow(settings: Settings, result: MonitorResult) -> str:
    store = resolve_store(settings.data_dir)
    client = client_for(store)
    experiment = experiment_id(client, store, MONITOR_EXPERIMENT)
    metrics = {f"psi.{c.column}": c.psi for c in result.columns}
    metrics["flagged_columns"] = float(len(result.flagged))
    if result.realised is not None and result.realised.roc_auc == result.realised.roc_auc:
        metrics["realised.roc_auc"] = result.realised.roc_auc
    if result.realised is not None:
        metrics["realised.ece"] = result.realised.ece
    with mlflow.start_run(experiment_id=experiment, run_name=result.run_id) as run:
        mlflow.set_tags({
            "scoring_run": result.run_id, "model_version": result.model_version,
            "flagged": ",".join(result.flagged) or "-",
            "realised_run": result.realised.run_id if result.realised else "-",
        })  # fmt: skip
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(result.report.parent), "monitoring")
    return str(run.info.run_id)
