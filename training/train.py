"""The entry points the CLI calls: train, report, log to MLflow, register the challenger."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow.tracking import MlflowClient

from contract.model import LabelWindow, ModelContract, feature_params
from contract.scoring import Scorer
from features.definitions import FeatureConfig
from training.pipeline import Outcome, fit_and_evaluate, read_table, table_to_snapshots
from training.plots import (
    contribution_plot,
    gains_plot,
    importance_plot,
    pr_plot,
    reliability_plot,
    roc_plot,
)
from training.registry import PromotionResult, champion_on_test, mark_challenger, promote
from training.report import render_report, write_report
from training.settings import TrainingSettings
from training.tracking import (
    MODEL_NAME,
    REFERENCE_ARTIFACT,
    client_for,
    experiment_id,
    flat_metrics,
    log_json,
    log_scoring_model,
    resolve_store,
)

log = logging.getLogger(__name__)
#: Rows drawn from the test set for the contribution plot (pred_contrib is per row).
CONTRIBUTION_SAMPLE = 5_000


@dataclass(frozen=True)
class TrainingResult:
    """What ``propensity train`` shows: every model's metrics, the choice and where it went."""

    metrics: dict[str, dict[str, Any]]
    chosen: str
    report_path: Path
    run_id: str
    model_uri: str
    model_version: str | None
    lineage: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen, "report": str(self.report_path), "run_id": self.run_id,
            "model_uri": self.model_uri, "model_version": self.model_version,
            "metrics": self.metrics, "lineage": self.lineage,
        }  # fmt: skip


def write_plots(outcome: Outcome, directory: Path) -> dict[str, Path]:
    """The report's PNGs: curves for every candidate, calibration and contributions of the
    chosen model, LightGBM gain importance when it was trained."""
    test = outcome.split.test
    label = test.label
    probabilities = {c.name: c.probability("test") for c in outcome.candidates}
    chosen = outcome.chosen
    reliability = {f"{chosen.name} calibrated": chosen.probability("test")}
    own = chosen.uncalibrated("test")
    if own is not None:
        reliability[f"{chosen.name} uncalibrated"] = own
    plots = {
        "roc": roc_plot(label, probabilities, directory / "roc.png"),
        "precision_recall": pr_plot(label, probabilities, directory / "pr.png"),
        "reliability": reliability_plot(label, reliability, directory / "reliability.png"),
        "gains": gains_plot(label, probabilities, directory / "gains.png"),
    }
    for candidate in outcome.candidates:
        if "gain_importance" in candidate.info:
            plots["importance"] = importance_plot(
                candidate.info["gain_importance"], directory / "importance.png"
            )
    rows = np.random.default_rng(0).permutation(test.rows)[:CONTRIBUTION_SAMPLE]
    scorer = Scorer.from_parts(chosen.scoring_spec(), chosen.booster_text)
    sample = test.features[np.sort(rows)]
    plots["contributions"] = contribution_plot(
        scorer.contributions(sample),
        sample,
        outcome.split.feature_columns,
        directory / "contributions.png",
    )
    return plots


def train_from_snapshots(
    snapshots: pl.DataFrame | pd.DataFrame,
    feature_columns: Sequence[str],
    settings: TrainingSettings,
    *,
    data_dir: Path,
    horizon: timedelta | None = None,
    snapshot_config: Mapping[str, Any] | None = None,
    feature_config: FeatureConfig | None = None,
    label: LabelWindow | None = None,
    events: pl.DataFrame | pl.LazyFrame | None = None,
    contacts: pl.DataFrame | None = None,
    reference: pl.DataFrame | None = None,
    label_col: str = "label",
    time_col: str = "as_of",
    model_name: str = MODEL_NAME,
) -> TrainingResult:
    """Train every candidate on a snapshot stack (see ``training.data``), write the report
    under ``<data_dir>/reports/<run_id>/``, log the run to MLflow and register the chosen
    model as ``challenger`` of ``model_name``. Arguments as in ``fit_and_evaluate``;
    ``feature_config`` and ``label`` (default: ``horizon``) are the model contract logged with
    it (``contract.model``): serving computes the model's inputs with that configuration."""
    outcome = fit_and_evaluate(
        snapshots, feature_columns, settings, horizon=horizon, events=events,
        contacts=contacts, reference=reference, snapshot_config=snapshot_config,
        feature_config=feature_config, label_col=label_col, time_col=time_col,
    )  # fmt: skip
    if label is None and horizon is not None:
        label = LabelWindow(horizon=horizon)
    contract = ModelContract(
        feature_columns=tuple(feature_columns), feature_config=feature_config, label=label
    )
    store = resolve_store(data_dir)
    client = client_for(store)
    with mlflow.start_run(experiment_id=experiment_id(client, store)) as run:
        report = _write_report(outcome, data_dir / "reports" / run.info.run_id)
        _log_run(outcome, settings, report.parent)
        mlflow.log_params(feature_params(feature_config, label))
        _log_reference(outcome, settings.reference_rows, settings.seed)
        spec = {**outcome.chosen.scoring_spec(), **contract.spec_fields()}
        booster = outcome.chosen.booster_text
        info = log_scoring_model(spec, booster, outcome.input_example, model_name)
    version = info.registered_model_version
    if version is not None:
        _mark_challenger(client, model_name, str(version), outcome, feature_config)
    return TrainingResult(
        outcome.table, outcome.chosen.name, report, run.info.run_id, info.model_uri,
        None if version is None else str(version), outcome.lineage,
    )  # fmt: skip


def _write_report(outcome: Outcome, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(outcome, report_dir)
    details = {
        c.name: {k: v for k, v in c.info.items() if k != "gain_importance"}
        for c in outcome.candidates
    }
    html = render_report(outcome.table, outcome.chosen.name, plots, outcome.lineage, details)
    return write_report(html, report_dir)


def _mark_challenger(
    client: MlflowClient,
    name: str,
    version: str,
    outcome: Outcome,
    feature_config: FeatureConfig | None,
) -> None:
    """Tag the new version with its test metrics and the champion's on the same test set."""
    test = outcome.split.test
    columns = {c: test.features[:, i] for i, c in enumerate(outcome.split.feature_columns)}
    champion = champion_on_test(client, name, columns, test.label, feature_config)
    mark_challenger(client, name, version, outcome.table[outcome.chosen.name]["test"], champion)


def _log_run(outcome: Outcome, settings: TrainingSettings, report_dir: Path) -> None:
    mlflow.log_params({f"training.{k}": v for k, v in settings.model_dump().items()})
    mlflow.log_params({
        "chosen": outcome.chosen.name,
        "data_hash": outcome.lineage["data_hash"],
        "n_features": len(outcome.split.feature_columns),
        **{f"rows.{k}": v for k, v in outcome.lineage["rows"].items()},
    })  # fmt: skip
    mlflow.log_metrics(flat_metrics(outcome.table))
    chosen_test = outcome.table[outcome.chosen.name]["test"]
    mlflow.log_metrics({f"test.{k}": v for k, v in chosen_test.items() if v == v})
    if "reference" in outcome.lineage:
        mlflow.log_metrics(outcome.lineage["reference"])
    log_json(outcome.table, "metrics_table.json")
    log_json(outcome.lineage, "lineage.json")
    log_json(list(outcome.split.feature_columns), "feature_columns.json")
    mlflow.log_params(plan_params(outcome.lineage["snapshot_config"]))
    log_json(outcome.lineage["snapshot_config"], "snapshot_config.json")
    mlflow.log_artifacts(str(report_dir), "report")


def plan_params(snapshot_config: Mapping[str, Any]) -> dict[str, str]:
    """The snapshot plan as run params (``snapshots.*``): cuts as ISO 8601 with the offset
    they were stated in, comma-separated, so runs can be found by the cuts they used."""
    return {
        f"snapshots.{name}": ",".join(map(str, value)) if isinstance(value, list) else str(value)
        for name, value in snapshot_config.items()
    }


def monitoring_reference(outcome: Outcome, rows: int, seed: int) -> pl.DataFrame:
    """At most ``rows`` test rows drawn at random: the features by name, ``as_of`` and the
    chosen model's ``score``; what ``propensity monitor`` compares scoring populations with."""
    test = outcome.split.test
    keep = np.sort(np.random.default_rng(seed).permutation(test.rows)[:rows])
    columns = outcome.split.feature_columns
    return pl.DataFrame({c: test.features[keep, i] for i, c in enumerate(columns)}).with_columns(
        pl.Series("as_of", test.as_of[keep]),
        pl.Series("score", outcome.chosen.probability("test")[keep]),
    )


def _log_reference(outcome: Outcome, rows: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(REFERENCE_ARTIFACT).name
        monitoring_reference(outcome, rows, seed).write_parquet(path)
        mlflow.log_artifact(str(path), str(Path(REFERENCE_ARTIFACT).parent))


def train_from_table(
    path: Path,
    label_col: str,
    time_col: str,
    settings: TrainingSettings,
    *,
    data_dir: Path,
    id_col: str | None = None,
    feature_columns: Sequence[str] | None = None,
    horizon: timedelta | None = None,
    model_name: str = MODEL_NAME,
) -> TrainingResult:
    """Train on a ready feature table (Parquet/CSV) through the same path: rows are grouped
    into snapshots by ``time_col`` (the latest time(s) are the test set)."""
    snapshots, columns = table_to_snapshots(
        read_table(path), label_col, time_col, id_col, feature_columns
    )
    config = {"source": str(path), "label_col": label_col, "time_col": time_col, "id_col": id_col}
    return train_from_snapshots(
        snapshots,
        columns,
        settings,
        data_dir=data_dir,
        horizon=horizon,
        snapshot_config=config,
        model_name=model_name,
    )


def promote_challenger(
    data_dir: Path,
    now: datetime,
    *,
    force: bool = False,
    model_name: str = MODEL_NAME,
    min_auc_gain: float = 0.0,
) -> PromotionResult:
    """``propensity promote``: move ``champion`` to the challenger if it wins on the same
    out-of-time test (``training.registry.promote``); ``now`` is stamped in the audit tags."""
    client = client_for(resolve_store(data_dir))
    return promote(client, now, name=model_name, force=force, min_auc_gain=min_auc_gain)
