"""What one API process holds: the loaded model (swappable), the store, and their health.

Loading never raises to the caller: a missing or broken model leaves the process up and
not ready, with the reason; a failed reload keeps the model being served.
"""

from __future__ import annotations

import functools
import gc
import hmac
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from features.ingest.validate import ValidationLimits
from serving.api.batching import MicroBatcher
from serving.api.intake import EventIntake
from serving.api.metrics import ServingMetrics
from serving.api.problems import ProblemError, without_paths
from serving.api.realtime import RealTimeScorer
from serving.api.rescoring import PostedEvents, rescore_posted
from serving.batch.outputs import published_run_id
from serving.batch.publish import recover
from serving.model.registry import (
    LoadedModel,
    ModelUnavailable,
    alias_version,
    load_registered_model,
)
from serving.model.uplift import load_uplift_model
from serving.settings import ServingPaths, ServingSettings
from serving.store.backends import open_store
from serving.store.base import ScoreStore, StoredRecord, StoreUnavailable

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Served:
    """A loaded model with its scorer; replaced whole on reload, never mutated."""

    loaded: LoadedModel
    scorer: RealTimeScorer


@dataclass(frozen=True)
class ReloadOutcome:
    reloaded: bool
    version: str | None
    previous: str | None
    message: str


def _freeze_heap(*, full: bool) -> None:
    """Take what is alive now (libraries, the model, caches) out of the cyclic collector's
    way. A full collection walks every tracked object, about half a million in this
    process, and took 280 ms in the middle of requests (measured under load: the events
    p99); objects made by requests are still collected as before. ``full`` (at startup)
    collects everything first; after a model swap only the young generations are collected,
    since a full collection would stall requests for as long (a replaced model is freed by
    reference counting: it holds no cycles, checked with weak references)."""
    if full:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()


class ServingState:
    def __init__(self, settings: ServingSettings, paths: ServingPaths, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.intake = EventIntake(self.event_limits)
        self.paths = paths
        self.metrics = ServingMetrics()
        self.served: Served | None = None
        self.model_problem: str | None = "the model has not been loaded yet"
        self.store: ScoreStore | None = None
        self.store_problem: str | None = "the store has not been opened yet"
        self._lost_run_logged = False
        self._reload_lock = threading.Lock()
        self._store_lock = threading.Lock()
        self._keys = [k.get_secret_value().encode() for k in settings.api_keys]
        self._read_keys = [k.get_secret_value().encode() for k in settings.read_keys]
        # One thread applies every posted event of the process, in batches: a visitor's
        # append, re-score and store never interleave with another of its own in this
        # process, and threads do not fight over the GIL.
        self.rescorer: MicroBatcher[PostedEvents, bytes] = MicroBatcher(
            "event-rescore", self._rescore, settings.event_batch_max
        )
        # Lookups of records whose top features were left for their first read.
        self.explainer: MicroBatcher[tuple[str, StoredRecord], bytes] = MicroBatcher(
            "explain", self._explain, settings.event_batch_max
        )

    def _rescore(self, posted: Sequence[PostedEvents]) -> list[bytes]:
        served, store = self.served, self.store
        if served is None or store is None:  # checked by the route; gone only at shutdown
            raise ProblemError(503, "Not ready", "the model or the store is not available")
        return rescore_posted(
            posted,
            served.scorer,
            store,
            keep=self.settings.max_history_events,
            metrics=self.metrics,
            explain=self.settings.explain_events == "inline",
        )

    def _explain(self, pending: Sequence[tuple[str, StoredRecord]]) -> list[bytes]:
        """The records with their top features, each stored back unless a newer record
        replaced it meanwhile (that one is the live one; this answer still holds for the
        record read). A record the loaded model did not score is answered as it is."""
        served, store = self.served, self.store
        unexplained = [stored.record for _, stored in pending]
        if served is None or store is None:
            return unexplained
        # The record was read: a lookup answers it even when its explanation or the
        # write-back fails (both are logged), since neither changes the score.
        try:
            explained = served.scorer.explain_records([stored for _, stored in pending])
        except Exception:
            log.exception("top features of %d records could not be computed", len(pending))
            return unexplained
        answers = []
        for (visitor_id, stored), record in zip(pending, explained, strict=True):
            if record is None:
                answers.append(stored.record)
                continue
            self.metrics.explained_on_read.inc()
            try:
                store.put_explained(visitor_id, stored.record, record)
            except Exception as problem:
                log.warning("explained record of %r not stored: %s", visitor_id, problem)
            answers.append(record)
        return answers

    def event_limits(self) -> ValidationLimits:
        """Ingestion's time bounds for posted events, as of now."""
        return ValidationLimits(
            min_event_time=self.settings.min_event_time,
            max_event_time=self.clock() + timedelta(seconds=self.settings.max_future_skew_seconds),
        )

    def _bound_registry_calls(self) -> None:
        """MLflow reads its HTTP limits from the environment at each request: set them from
        the settings, so that an unreachable registry costs seconds, not minutes (MLflow's
        own default retries for about four minutes)."""
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = f"{self.settings.registry_timeout_seconds:g}"
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.settings.registry_retries)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"

    def open(self) -> None:
        self._bound_registry_calls()
        self.intake.start()
        self.rescorer.start()
        self.explainer.start()
        self.open_store()
        self.reload()
        _freeze_heap(full=True)

    def open_store(self) -> None:
        """Open the store if it is not open (at startup; again from ``/readyz`` while the
        store could not be reached, so the process recovers without a restart)."""
        with self._store_lock:
            if self.store is not None:
                return
            try:
                self.store = open_store(self.settings, self.paths, serving=True)
                self.store_problem = None
            except StoreUnavailable as problem:
                self.store_problem = str(problem)
                log.error("score store unavailable: %s", problem)
                return
            self._finish_killed_publish(self.store)

    def _finish_killed_publish(self, store: ScoreStore) -> None:
        """A batch run killed after the store switched to it left its folder staged or
        ``latest.json`` on the previous run: finish them (``serving.batch.publish``), so
        that the files name the run the API answers with. A failure here (outputs mounted
        read-only, the store gone again) is logged; serving goes on."""
        try:
            repaired = recover(self.paths.scoring_dir, store)
        except (OSError, sqlite3.Error, RedisError, StoreUnavailable) as problem:
            log.error("could not check the last batch publish: %s", problem)
            return
        if repaired.placed or repaired.pointed:
            log.warning("finished the publish of run %s", repaired.placed or repaired.pointed)

    def _load(self) -> Served:
        loaded = load_registered_model(
            self.settings.model_uri,
            tracking_uri=self.paths.tracking_uri,
            cache_dir=self.paths.model_cache_dir,
            predictor=self.settings.predictor,
            compile_timeout_seconds=self.settings.compile_timeout_seconds,
        )
        loader = functools.partial(
            load_uplift_model,
            tracking_uri=self.paths.tracking_uri,
            cache_dir=self.paths.model_cache_dir,
        )
        return Served(loaded, RealTimeScorer(loaded, self.settings, loader))

    def reload(self) -> ReloadOutcome:
        """Load the model the URI names now; swap it in only when it loaded."""
        with self._reload_lock:
            previous = self.served.loaded.info.version if self.served else None
            try:
                served = self._load()
            except ModelUnavailable as problem:
                return self._refused(previous, str(problem))
            except Exception as problem:  # a broken artifact must not take the process down
                log.error("loading %s failed: %s", self.settings.model_uri, problem, exc_info=True)
                return self._refused(
                    previous,
                    f"{self.settings.model_uri} could not be loaded ({type(problem).__name__}; "
                    "the detail is in the server's log)",
                )
            self.served = served
            self.model_problem = None
            _freeze_heap(full=False)
            version = served.loaded.info.version
            self.metrics.set_model(version)
            self.metrics.reloads.labels("loaded").inc()
            log.info("serving %s version %s", served.loaded.info.name, version)
            self._warn_if_histories_are_short(served.loaded)
            return ReloadOutcome(True, version, previous, f"serving version {version}")

    def _warn_if_histories_are_short(self, loaded: LoadedModel) -> None:
        """Say so when the live run stored shorter histories than the new model reads: event
        answers are flagged ``history_complete: false`` until the next batch run."""
        try:
            run = self.store.current_run() if self.store is not None else None
        except Exception:  # the store's health is /readyz's to report
            return
        wanted = loaded.feature_config
        stored = None if run is None else run.feature_config
        if run is not None and (stored is None or not wanted.reads_within(stored.lookback)):
            shown = "an unknown window" if stored is None else stored.lookback or "every event"
            log.warning(
                "version %s reads %s of events; the live batch run %s stored %s: re-scores "
                "from stored histories may lack events until the next batch run",
                loaded.info.version, wanted.lookback or "every event", run.run_id, shown,
            )  # fmt: skip

    def _refused(self, previous: str | None, detail: str) -> ReloadOutcome:
        """Log the detail; keep for callers a message without the server's paths."""
        message = without_paths(detail)
        self.metrics.reloads.labels("failed").inc()
        if previous is None:
            self.model_problem = message
            log.error("model not loaded: %s", detail)
        else:
            log.error("model reload refused, still serving version %s: %s", previous, detail)
        return ReloadOutcome(False, previous, previous, message)

    def run_problem(self, store: ScoreStore) -> str | None:
        """Why the store cannot answer lookups, or None. A store that holds no batch run while
        the outputs name a published one lost its data (a Redis restarted empty): that is an
        alarm, logged, not a stream of 404s for every visitor. Before the first run ever
        published the API is ready, so that posted events can be scored from the start."""
        if store.current_run() is not None:
            return None
        published = published_run_id(self.paths.scoring_dir)
        if published is None:
            return None
        if not self._lost_run_logged:
            log.error("the score store holds no run, although run %s is published", published)
            self._lost_run_logged = True
        return (
            f"the score store holds no batch run although run {published} is published: it "
            "lost its data; run `propensity score` to publish again"
        )

    def registered_version(self) -> str | None:
        """The version the alias points at now (for the alias poll); None when unknown."""
        return alias_version(self.settings.model_uri, self.paths.tracking_uri)

    def key_is_valid(self, presented: str | None, *, reading: bool = False) -> bool:
        """Constant-time comparison against every configured key (and, ``reading``, every
        read-only key)."""
        if presented is None:
            return False
        candidate = presented.encode()
        matched = False
        for key in [*self._keys, *self._read_keys] if reading else self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched

    @property
    def reads_need_key(self) -> bool:
        """Once any key is configured reads need one, unless the operator opened them."""
        configured = self.has_keys or self.has_read_keys
        return self.settings.read_requires_key or (configured and not self.settings.open_reads)

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    @property
    def has_read_keys(self) -> bool:
        return bool(self._read_keys)

    def close(self) -> None:
        self.rescorer.stop()
        self.explainer.stop()
        self.intake.stop()
        if self.store is not None:
            self.store.close()
