"""The stages wired together: read the lake, build snapshots, train, score.

The one place that knows every package; each function is a few calls into them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from contract.model import LabelWindow, ModelContract
from features.definitions import FEATURE_COLUMNS
from features.ingest.contacts import read_contacts
from features.ingest.incremental import FilesReport
from features.ingest.pipeline import IngestReport
from features.lake import scan_events
from features.snapshot_plan import (
    CutRefused,
    Windows,
    describe_cuts,
    lake_too_short,
    snapshot_span,
    stated_cuts,
)
from features.snapshots import SnapshotConfig, build_snapshots
from propensity.settings import Settings
from serving.model.registry import ModelUnavailable, registered_contract
from serving.policy.lift import LiftModel
from serving.settings import ServingPaths
from training.tracking import resolve_store
from training.train import TrainingResult, train_from_snapshots

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


log = logging.getLogger(__name__)


def lake_span(lake_dir: Path) -> tuple[datetime, datetime]:
    """First and last event time in the lake."""
    span = scan_events(lake_dir).select(
        pl.col("event_time").min().alias("first"), pl.col("event_time").max().alias("last")
    )
    first, last = span.collect().row(0)
    if first is None:
        raise ValueError(f"the event lake at {lake_dir} is empty: run `propensity ingest` first")
    return first, last


def snapshot_config_for_lake(settings: Settings) -> SnapshotConfig:
    """The snapshots ``propensity train`` fits on: the stated cuts, checked against the lake
    and the leak rule, or else the latest snapshots whose lookback and label windows both
    fit inside the lake; for a lake too short, an error with settings that fit
    (``features.snapshot_plan``)."""
    first, last = lake_span(settings.lake_dir)
    plan = settings.snapshots
    windows = Windows(lookback=plan.lookback, slide=plan.slide, horizon=plan.horizon)
    windows_and_rules = {
        "slide": plan.slide,
        "lookback": plan.lookback,
        "session_timeout": plan.session_timeout,
        "local_time_offset": plan.local_time_offset,
        "horizon": plan.horizon,
        "timezone": plan.timezone,
    }
    stated = plan.stated_cuts()
    if stated:
        _one_test_and_validation_cut(settings)
        cuts = stated_cuts(first, last, windows, stated, plan.max_snapshots)
        log.info("stated cuts (%s): %s", plan.timezone, describe_cuts(cuts))
        return SnapshotConfig(start=cuts[0], end=cuts[-1], cuts=tuple(cuts), **windows_and_rules)
    span = snapshot_span(first, last, windows, plan.max_snapshots, plan.zone)
    if span is None:
        raise lake_too_short(first, last, windows)
    return SnapshotConfig(start=span[0], end=span[1], **windows_and_rules)


def _one_test_and_validation_cut(settings: Settings) -> None:
    """Stated cuts name one test and one validation cut: the split must take them so."""
    training = settings.training
    if (training.test_snapshots, training.validation_snapshots) != (1, 1):
        raise CutRefused(
            "stated cuts name one test and one validation cut, but the training settings hold "
            f"out {training.test_snapshots} test and {training.validation_snapshots} "
            "validation snapshots",
            "unset PROPENSITY_TRAINING__TEST_SNAPSHOTS and "
            "PROPENSITY_TRAINING__VALIDATION_SNAPSHOTS (1 each) to use stated cuts",
        )


def training_snapshots(settings: Settings) -> tuple[SnapshotConfig, pl.DataFrame]:
    """The labelled snapshots ``propensity train`` fits on (``snapshot_config_for_lake``)."""
    config = snapshot_config_for_lake(settings)
    frame = build_snapshots(settings.lake_dir, config)
    assert isinstance(frame, pl.LazyFrame)
    # A canonical row order: the streaming engine's is not stable between runs, and both the
    # data fingerprint and LightGBM's result depend on it.
    return config, frame.collect(engine="streaming").sort("as_of", "visitor_id")


def train(
    settings: Settings,
    *,
    truth: Path | None = None,
    prepared: tuple[SnapshotConfig, pl.DataFrame] | None = None,
) -> TrainingResult:
    """Snapshots from the lake (or ``prepared`` ones) -> every candidate -> challenger."""
    config, snapshots = prepared or training_snapshots(settings)
    return train_from_snapshots(
        snapshots,
        FEATURE_COLUMNS,
        settings.training,
        data_dir=settings.data_dir,
        horizon=config.prediction_gap + config.horizon,
        snapshot_config=config.model_dump(mode="json"),
        feature_config=config.feature_config,
        label=LabelWindow(horizon=config.horizon, prediction_gap=config.prediction_gap),
        events=scan_events(settings.lake_dir),
        contacts=read_contacts(settings.lake_dir),
        reference=_reference(truth, config, settings.lake_dir) if truth else None,
    )


def _reference(truth: Path, config: SnapshotConfig, lake_dir: Path) -> pl.DataFrame:
    """The simulator's exact purchase probability at every snapshot, the as-of one (churn
    inferred) and, when the simulation's settings lie beside ``truth`` (``propensity
    simulate`` writes them), the ideal observer of the lake's events."""
    from features.simulation import SimulationConfig, reference_probabilities
    from features.simulation.writer import CONFIG_FILE

    settings = truth.with_name(CONFIG_FILE)
    simulation = (
        SimulationConfig.from_json(settings.read_text(encoding="utf-8"))
        if settings.is_file()
        else None
    )
    return reference_probabilities(
        pl.read_parquet(truth),
        scan_events(lake_dir),
        config.snapshot_times(),
        config.horizon,
        simulation,
    )


def ingest(
    settings: Settings,
    file: Path,
    fmt: str | None = None,
    mapping: Path | None = None,
    *,
    fingerprint: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Validate one file into the lake (idempotent: events already there count as duplicates);
    ``fmt="contacts"`` updates contactability instead."""
    from features.ingest.budget import IngestBudget
    from features.ingest.contacts import ingest_contacts_file, merge_ads_consent
    from features.ingest.ga4 import read_ga4_consent
    from features.ingest.pipeline import ingest_file, new_ingest_id
    from features.ingest.sources import resolve_source
    from features.ingest.validate import ValidationLimits

    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such file")
    started = datetime.now(UTC)
    ingest_id = new_ingest_id(started)
    if fmt == "contacts":
        return ingest_contacts_file(
            file,
            lake_dir=settings.lake_dir,
            quarantine_dir=settings.quarantine_dir,
            ingest_id=ingest_id,
            store_raw_identifiers=settings.contacts.store_raw_identifiers,
        )
    source = resolve_source(fmt, mapping)
    limits = ValidationLimits(
        min_event_time=settings.ingest.min_event_time,
        max_event_time=started + settings.ingest.max_future_skew,
    )
    budget = IngestBudget.from_memory(settings.ingest.max_memory_mb)
    report = ingest_file(
        file,
        mapping=source.mapping,
        reader=source.reader,
        lake_dir=settings.lake_dir,
        quarantine_dir=settings.quarantine_dir,
        limits=limits,
        batch_rows=budget.batch_rows,
        day_rows=budget.day_rows,
        held_bytes=budget.held_bytes,
        ingest_id=ingest_id,
        fingerprint=fingerprint,
        on_progress=on_progress,
    )
    if fmt == "ga4":
        report.contacts_updated = merge_ads_consent(settings.lake_dir, read_ga4_consent(file))
    return report


def ingest_many(
    settings: Settings,
    targets: list[str],
    fmt: str | None = None,
    mapping: Path | None = None,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> FilesReport:
    """Ingest the files, folders and glob patterns in ``targets`` in order, skipping files
    whose content is already in the lake."""
    from features.ingest.incremental import expand_inputs, ingest_files

    paths = expand_inputs(targets)
    if not paths:
        raise FileNotFoundError(f"{' '.join(targets)}: no files to ingest")
    return ingest_files(
        paths,
        settings.lake_dir,
        lambda path, digest: ingest(
            settings, path, fmt, mapping, fingerprint=digest, on_progress=on_progress
        ),
    )


def serving_paths(settings: Settings) -> ServingPaths:
    return ServingPaths.under(settings.data_dir, resolve_store(settings.data_dir).tracking_uri)


def model_contract(settings: Settings, version: str) -> ModelContract:
    """The contract of a registered version of the served model (the one that scored a run,
    say): its feature configuration and label window."""
    paths = serving_paths(settings)
    return registered_contract(
        settings.serving.model_uri,
        version,
        tracking_uri=paths.tracking_uri,
        cache_dir=paths.model_cache_dir,
    )


def outcome_window(settings: Settings, version: str) -> timedelta:
    """How long after a run's ``as_of`` its outcomes count: the label window of the model
    version that scored it (a model that records none: the snapshot settings' horizon)."""
    try:
        label = model_contract(settings, version).label
    except ModelUnavailable as problem:
        log.warning("%s: counting outcomes over %s", problem, settings.snapshots.horizon)
        label = None
    return settings.snapshots.horizon if label is None else label.reach


def spark_session(settings: Settings) -> SparkSession:
    """The Spark session ``--engine spark`` runs on, as configured (local mode by default)."""
    from features.engines import spark_session as start

    spark = settings.spark
    return start(spark.master, remote=spark.remote, conf=spark.conf)


def scoring_lift(settings: Settings) -> LiftModel | None:
    """The lift the next scoring run values contacts with: the live fit, unless switched off
    (``LIFT__USE``) or not fitted yet (None: the policy's assumption)."""
    from serving.campaign.fits import latest_fit

    return latest_fit(settings.outputs_dir) if settings.lift.use else None
