"""``propensity retrain``: the one command a scheduler runs.

ingest what is new -> snapshots -> (unchanged since the champion? stop) -> train and register
the challenger (scored against the champion on the same out-of-time test) -> promote only
through the training gate (``training.registry.promote``) -> refit the lift through its own
gate (``serving.campaign.lift.gate_lift``: a refit without the newest run must predict that
run's holdout as well as the live fit) -> a summary, printed and logged as an MLflow run of
the ``propensity-retrain`` experiment.

Safe to re-run: ingest is idempotent, a run on the data the champion was trained on (same
snapshot fingerprint and training settings) trains nothing, and one retrain runs at a time
(an advisory lock in the data directory). The champion alias moves only in the last step and
the score store is never touched, so a failure anywhere leaves both as they were; it is
reported as ``RetrainFailed`` naming the step.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import mlflow
import polars as pl

from features.definitions import FEATURE_COLUMNS
from features.snapshots import SnapshotConfig
from propensity import jobs, lift_fitting
from propensity.settings import Settings
from training.data import data_hash
from training.registry import CHAMPION, alias_version
from training.tracking import EXPERIMENT, MODEL_NAME, client_for, experiment_id, resolve_store
from training.train import promote_challenger

log = logging.getLogger(__name__)
RETRAIN_EXPERIMENT = f"{EXPERIMENT}-retrain"
T = TypeVar("T")


class RetrainFailed(RuntimeError):
    def __init__(self, step: str, cause: BaseException, summary: RetrainSummary) -> None:
        super().__init__(f"retrain failed at step '{step}': {cause}")
        self.step = step
        self.summary = summary


@dataclass
class RetrainSummary:
    started_at: datetime
    steps: dict[str, str] = field(default_factory=dict)  # step -> ok / skipped / failed
    ingested: list[dict[str, Any]] = field(default_factory=list)
    data_hash: str | None = None
    champion_before: str | None = None
    challenger_version: str | None = None
    champion_after: str | None = None
    promoted: bool = False
    reason: str = ""
    training_run_id: str | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    #: The lift refit: its gate's verdict and the fit made live (None when it was not).
    lift: dict[str, Any] = field(default_factory=dict)
    retrain_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "started_at": self.started_at.isoformat()}


def inbox_sources(settings: Settings) -> list[tuple[Path, str | None]]:
    """Files waiting in the inbox with their format (contact files by name)."""
    inbox = settings.retrain.inbox
    if inbox is None or not inbox.is_dir():
        return []
    files = sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))
    return [
        (
            p,
            "contacts"
            if p.match(settings.retrain.contacts_glob)
            else settings.retrain.inbox_format,
        )
        for p in files
    ]


def champion_fingerprint(settings: Settings) -> tuple[str, dict[str, str]] | None:
    """(version, logged params) of the champion's training run; None without a champion."""
    client = client_for(resolve_store(settings.data_dir))
    version = alias_version(client, MODEL_NAME, CHAMPION)
    if version is None:
        return None
    run_id = client.get_model_version(MODEL_NAME, version).run_id
    return version, dict(client.get_run(run_id).data.params) if run_id else {}


def unchanged_reason(settings: Settings, fingerprint: str) -> str | None:
    """Why training would repeat the champion's, or None when something changed."""
    champion = champion_fingerprint(settings)
    if champion is None:
        return None
    version, params = champion
    wanted = {f"training.{k}": str(v) for k, v in settings.training.model_dump().items()}
    if params.get("data_hash") != fingerprint or any(params.get(k) != v for k, v in wanted.items()):
        return None
    return (
        f"training data unchanged since champion v{version} (snapshot fingerprint "
        f"{fingerprint[:12]}, same training settings): nothing to retrain"
    )


@contextmanager
def retrain_lock(data_dir: Path) -> Iterator[None]:
    """One retrain at a time per data directory; released when the process ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / ".retrain.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another retrain is running on {data_dir}") from None
        yield


def retrain(
    settings: Settings, sources: Sequence[tuple[Path, str | None]], now: datetime
) -> RetrainSummary:
    """Run every step (see module doc); raises ``RetrainFailed`` naming the failed step."""
    summary = RetrainSummary(started_at=now)

    def step(name: str, action: Callable[[], T]) -> T:
        try:
            value = action()
        except Exception as problem:
            summary.steps[name] = "failed"
            summary.reason = f"failed at step '{name}': {problem}"
            _log_summary(settings, summary, status="FAILED")
            raise RetrainFailed(name, problem, summary) from problem
        summary.steps[name] = "ok"
        return value

    with retrain_lock(settings.data_dir):
        summary.champion_before = step("registry", lambda: _champion(settings))
        summary.champion_after = summary.champion_before
        inbox = inbox_sources(settings)
        summary.ingested = step("ingest", lambda: _ingest(settings, [*sources, *inbox]))
        step("inbox", lambda: _archive(settings, [path for path, _ in inbox]))
        prepared, summary.data_hash = step("snapshots", lambda: _snapshots(settings))
        unchanged = step("compare", lambda: _unchanged(settings, summary.data_hash or ""))
        if unchanged is not None:
            summary.steps.update(train="skipped", promote="skipped")
            summary.reason = unchanged
        else:
            result = step("train", lambda: jobs.train(settings, prepared=prepared))
            summary.challenger_version = result.model_version
            summary.training_run_id = result.run_id
            summary.test_metrics = {
                k: float(v) for k, v in result.metrics[result.chosen]["test"].items()
            }
            gain = settings.training.promotion_min_auc_gain
            decision = step(
                "promote",
                lambda: promote_challenger(settings.data_dir, now, min_auc_gain=gain),
            )
            summary.promoted, summary.reason = decision.promoted, decision.reason
            summary.champion_after = decision.champion_version
            if not decision.promoted and decision.challenger_version:
                summary.reason = f"challenger v{decision.challenger_version}: {decision.reason}"
        summary.lift = step("lift", lambda: _refit_lift(settings))
        if not summary.lift:
            summary.steps["lift"] = "skipped"
        summary.retrain_run_id = step("log", lambda: _log_summary(settings, summary, "FINISHED"))
    return summary


def _refit_lift(settings: Settings) -> dict[str, Any]:
    """Refit the lift through its gate; empty when no scoring run has its outcomes in."""
    gate, model = lift_fitting.gated_lift(settings)
    if gate.newest_run is None:
        return {}
    return {**asdict(gate), "fit_id": model.fit_id if model is not None else None}


def _snapshots(settings: Settings) -> tuple[tuple[SnapshotConfig, pl.DataFrame], str]:
    """The training snapshots and their fingerprint (as the training run logs it)."""
    prepared = jobs.training_snapshots(settings)
    columns = ["visitor_id", "as_of", "label", *FEATURE_COLUMNS]
    return prepared, data_hash(prepared[1], columns, prepared[0].feature_config)


def _champion(settings: Settings) -> str | None:
    return alias_version(client_for(resolve_store(settings.data_dir)), MODEL_NAME, CHAMPION)


def _unchanged(settings: Settings, fingerprint: str) -> str | None:
    return unchanged_reason(settings, fingerprint) if settings.retrain.skip_unchanged else None


def _ingest(settings: Settings, sources: Sequence[tuple[Path, str | None]]) -> list[dict[str, Any]]:
    reports = []
    for path, fmt in sources:
        report = jobs.ingest(settings, path, fmt)
        reports.append({"file": str(path), "format": fmt or "canonical", **_counts(report)})
        log.info("ingested %s: %s", path, reports[-1])
    return reports


def _counts(report: Any) -> dict[str, Any]:
    payload = report.to_dict()
    return {k: payload[k] for k in ("rows_read", "accepted", "duplicates") if k in payload}


def _archive(settings: Settings, files: Sequence[Path]) -> None:
    """Move ingested inbox files aside, so that the next run does not read them again."""
    if not files or settings.retrain.inbox is None:
        return
    done = settings.retrain.inbox / "ingested"
    done.mkdir(exist_ok=True)
    for path in files:
        shutil.move(path, done / path.name)


def _log_summary(settings: Settings, summary: RetrainSummary, status: str) -> str | None:
    """One run per retrain in ``propensity-retrain``; a failure to log a failure is logged."""
    try:
        store = resolve_store(settings.data_dir)
        client = client_for(store)
        experiment = experiment_id(client, store, RETRAIN_EXPERIMENT)
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.set_tags({
                "retrain.promoted": str(summary.promoted).lower(),
                "retrain.reason": summary.reason[:5000],
                "retrain.champion_before": summary.champion_before or "-",
                "retrain.champion_after": summary.champion_after or "-",
                "retrain.challenger_version": summary.challenger_version or "-",
                "retrain.training_run_id": summary.training_run_id or "-",
                **{f"retrain.step.{k}": v for k, v in summary.steps.items()},
            })  # fmt: skip
            mlflow.log_dict(summary.to_dict(), "retrain_summary.json")
        if status != "FINISHED":
            client.set_terminated(run.info.run_id, status=status)
        return str(run.info.run_id)
    except Exception:
        if status == "FINISHED":
            raise
        log.exception("could not log the failed retrain to MLflow")
        return None
