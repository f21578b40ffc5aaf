"""Batch scoring: every visitor active in the lookback, scored, routed, written out.

``score_visitors`` builds features as of ``as_of`` (default: just after the latest event in
the lake) with ``features.batch`` and the model's own feature configuration (its contract),
scores them with the registered model, routes them with the policy, and writes, per run,
``<outputs>/scoring/<run>/``:

- ``scores.parquet``: one row per visitor: ``visitor_id, score, decile, route, reason,
  expected_value, model_version, as_of, scored_at``;
- ``email_audience.csv`` and ``ads_audience.csv``: who the email tool and the ad platforms
  get (``visitor_id, score, decile, expected_value``), checked against consent first;
- ``summary.json``; then the score store is replaced by this run and ``latest.json`` points
  at it.

Atomic under ``kill -9`` (``serving.batch.publish``): the files are staged in a private
folder, the store's switch to the run is the commit point, then the folder is renamed into
place and ``latest.json`` names the run. Killed before the switch, the previous run stays
published; killed after it, the next start (of this job or of the API) finishes the folder and
the pointer. Each run starts by that repair and by removing dead runs' leftovers (counted in
its summary). Idempotent: a run is named by its ``as_of``, model version and policy;
re-running a finished one changes nothing.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import polars as pl

from features.batch import build_features, collect
from features.engines import Engine
from features.ingest.contacts import read_contacts
from features.lake import scan_events, visitors_before
from serving.batch.outputs import ScoringSummary, run_summary, write_outputs
from serving.batch.publish import (
    Recovery,
    Step,
    place_folder,
    point_latest,
    recover,
    staging_folder,
    sync_folder,
)
from serving.batch.scored import routed_frame, scored_frame
from serving.batch.spark import score_on_spark
from serving.model.registry import LoadedModel, load_registered_model
from serving.model.scoring import ROUTING_FEATURES
from serving.model.uplift import load_uplift_model, usable_uplift
from serving.policy.lift import LiftModel
from serving.settings import ServingPaths, ServingSettings
from serving.store.backends import open_store
from serving.store.base import RunInfo, ScoreStore
from serving.store.history import batch_histories
from serving.store.records import batch_records

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


def latest_event_time(lake_dir: Path) -> datetime:
    latest = scan_events(lake_dir).select(pl.col("event_time").max()).collect().item()
    if latest is None:
        raise ValueError(f"the event lake at {lake_dir} has no events to score")
    return latest.astimezone(UTC)


def default_as_of(lake_dir: Path) -> datetime:
    """One microsecond after the latest event, so that every event in the lake counts."""
    return latest_event_time(lake_dir) + timedelta(microseconds=1)


def model_features(
    lake_dir: Path,
    as_of: datetime,
    loaded: LoadedModel,
    *,
    engine: Engine = "polars",
    spark: SparkSession | None = None,
) -> pl.LazyFrame | SparkDataFrame:
    """Features of every visitor active before ``as_of``, computed as the model's contract
    says (its lookback, session timeout and local time offset, never the defaults): what a
    run scores. The engine's lazy frame (``features.batch.build_features``)."""
    return build_features(lake_dir, as_of, engine=engine, config=loaded.feature_config, spark=spark)


def run_name(
    as_of: datetime, model_version: str, settings: ServingSettings, lift: LiftModel | None = None
) -> str:
    """``<as_of>-v<model version>-<policy fingerprint>[-<lift fit>]``: what decided the run."""
    policy = settings.routing.fingerprint()
    name = f"{as_of.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-v{model_version}-{policy}"
    return name if lift is None else f"{name}-{lift.fit_id}"


def _publish_chunks(
    scored: pl.DataFrame, histories: pl.DataFrame, rows: int
) -> Iterator[pl.DataFrame]:
    with_history = batch_records(scored).join(histories, on="visitor_id", how="left")
    for start in range(0, with_history.height, rows):
        yield with_history.slice(start, rows)


def _writing(chunks: Iterator[pl.DataFrame], step: Step) -> Iterator[pl.DataFrame]:
    for chunk in chunks:
        yield chunk
        step("store-writing")  # resumed by the store: the chunk is in its new generation


def score_visitors(
    settings: ServingSettings,
    paths: ServingPaths,
    *,
    as_of: datetime | None = None,
    engine: Engine = "polars",
    model: LoadedModel | None = None,
    store: ScoreStore | None = None,
    scored_at: datetime | None = None,
    on_progress: Progress | None = None,
    spark: SparkSession | None = None,
    lift: LiftModel | None = None,
    on_step: Step | None = None,
) -> ScoringSummary:
    """Score, route and publish every visitor active before ``as_of`` (see module doc).

    ``engine="spark"`` computes the features on ``spark`` (a local session if None).
    ``on_step`` is called with the name of each publish step once done
    (``serving.batch.publish.STEPS``): the crash tests kill the job there.
    """
    as_of = (as_of or default_as_of(paths.lake_dir)).astimezone(UTC)
    loaded = model or load_registered_model(
        settings.model_uri,
        tracking_uri=paths.tracking_uri,
        cache_dir=paths.model_cache_dir,
        predictor=settings.predictor,
        compile_timeout_seconds=settings.compile_timeout_seconds,
    )
    own_store = store is None
    store = store or open_store(settings, paths)
    try:
        return _run(
            settings,
            paths,
            as_of,
            engine,
            loaded,
            store,
            scored_at or datetime.now(UTC),
            on_progress or (lambda _: None),
            spark,
            lift,
            on_step or (lambda _: None),
        )
    finally:
        if own_store:
            store.close()


def _run(
    settings: ServingSettings,
    paths: ServingPaths,
    as_of: datetime,
    engine: Engine,
    loaded: LoadedModel,
    store: ScoreStore,
    scored_at: datetime,
    progress: Progress,
    spark: SparkSession | None,
    lift: LiftModel | None,
    step: Step,
) -> ScoringSummary:
    repaired = recover(paths.scoring_dir, store)
    name = run_name(as_of, loaded.info.version, settings, lift)
    run_dir = paths.scoring_dir / name
    current = store.current_run()
    if (run_dir / "summary.json").exists() and current is not None and current.run_id == name:
        log.info("run %s is already published: nothing to do", name)
        previous = ScoringSummary.from_json((run_dir / "summary.json").read_bytes())
        return _with_repairs(replace(previous, skipped=True), repaired)
    config = loaded.feature_config
    lift, uplift_models = usable_uplift(
        lift,
        functools.partial(
            load_uplift_model, tracking_uri=paths.tracking_uri, cache_dir=paths.model_cache_dir
        ),
        config,
        {*loaded.model.feature_names, *ROUTING_FEATURES},
    )
    features = model_features(paths.lake_dir, as_of, loaded, engine=engine, spark=spark)
    contacts = read_contacts(paths.lake_dir)
    if isinstance(features, pl.LazyFrame):
        frame = collect(features)
        scored, cuts, floor, shares = scored_frame(
            frame, contacts, loaded, settings, progress, lift, uplift_models
        )
    else:  # Spark: score and explain on the executors, route the run here
        explain = settings.top_features if settings.batch_contributions else 0
        narrow = score_on_spark(features, loaded.model, explain, uplift_models)
        progress(narrow.height)
        scored, cuts, floor, shares = routed_frame(narrow, contacts, settings, lift)
    scored = scored.with_columns(
        pl.lit(loaded.info.version).alias("model_version"),
        pl.lit(as_of).alias("as_of"),
        pl.lit(scored_at).alias("scored_at"),
    )
    run = RunInfo(
        run_id=name,
        model_version=loaded.info.version,
        as_of=as_of,
        scored_at=scored_at,
        visitors=scored.height,
        decile_cuts=tuple(cuts.tolist()),
        ads_ev_floor=floor,
        feature_config=config,
        lift=None if lift is None else lift.to_dict(),
        # The real-time path holds out with the shares this run used.
        extra={"holdout_shares": shares},
    )
    staging = staging_folder(paths.scoring_dir, name)
    shutil.rmtree(staging, ignore_errors=True)
    switched = False
    try:
        files = write_outputs(scored, staging)
        events = scan_events(paths.lake_dir, start=config.window_start(as_of), end=as_of)
        histories = batch_histories(
            events, as_of, config.lookback, settings.max_history_events
        ).collect()
        summary = replace(
            _with_repairs(run_summary(scored, run, run_dir, files, settings), repaired),
            known_visitors=visitors_before(paths.lake_dir, as_of),
            feature_window_days=(
                None if config.lookback is None else config.lookback / timedelta(days=1)
            ),
        )
        (staging / "summary.json").write_bytes(orjson.dumps(summary.to_dict()))
        sync_folder(staging)
        step("staged")
        store.publish(run, _writing(_publish_chunks(scored, histories, 50_000), step))
        switched = True
        step("store-switched")
        place_folder(staging, run_dir, step)
    finally:
        if not switched:  # after the switch, the staged folder is what the next start places
            shutil.rmtree(staging, ignore_errors=True)
    point_latest(paths.scoring_dir, summary, step)
    return summary


def _with_repairs(summary: ScoringSummary, repaired: Recovery) -> ScoringSummary:
    """The summary, with what the run's start repaired of earlier runs killed mid-publish."""
    return replace(
        summary,
        leftovers_removed=repaired.removed,
        placed=repaired.placed,
        repointed=repaired.pointed,
    )
