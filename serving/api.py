"""The real-time API: score lookups, what-if scoring, event intake with re-scoring, model
info, health and metrics. OpenAPI docs at ``/docs``.

``create_app(settings, paths)`` builds the app; its lifespan opens the store and loads the
model (a missing model leaves the app up, not ready, and the scoring routes answer 503 with
the reason). ``/v1/score`` is a plain ``def`` (FastAPI runs it in its thread pool); the
lookup reads a local store directly, because a thread hop costs more than the read; posted
events are re-scored in batches by the process's re-score thread (``serving.rescoring``).
The lookup and the event route are answered by plain handlers, in front of the middleware
stack for plain requests (``serving.hot_routes``) and behind their documented FastAPI routes
for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope

from serving.asgi import read_body, request_body
from serving.body_limit import ContentLengthLimit
from serving.dependencies import (
    KEY_PARAMETER,
    ReadAccess,
    ServedDep,
    StateDep,
    StoreDep,
    WriteAccess,
    readable_store,
    scoring_for_writes,
)
from serving.hot_routes import EVENTS_ROUTE, LOOKUP_ROUTE, Answer, HotRoutes, as_asgi
from serving.metrics import MetricsMiddleware, RequestRecorder
from serving.problems import (
    PROBLEM_TYPE,
    Problem,
    ProblemError,
    install_problem_handlers,
    problem_response,
)
from serving.realtime import Contact, FeatureInputError
from serving.rescoring import PostedEvents
from serving.schemas import (
    EventsRequest,
    EventsResponse,
    ModelResponse,
    Readiness,
    ReloadResponse,
    ScoreRequest,
    VisitorScore,
)
from serving.settings import ServingPaths, ServingSettings
from serving.sqlite_store import SqliteScoreStore
from serving.state import ServingState
from serving.store import ScoreStore, StoreUnavailable

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
JSON = "application/json"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Documented problem answers: ``application/problem+json`` bodies with the ``Problem`` shape.
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"content": {PROBLEM_TYPE: {"schema": Problem.model_json_schema()}}}
    for status in (400, 401, 404, 413, 422, 503)
}


def _json(payload: bytes, status: int = 200) -> Response:
    return Response(payload, status_code=status, media_type=JSON)


def _check_size(settings: ServingSettings, events: int) -> None:
    if events > settings.max_events_per_request:
        raise ProblemError(
            413,
            "Too many events",
            f"{events} events in one request; at most {settings.max_events_per_request}",
        )


def _check_as_of(settings: ServingSettings, as_of: datetime | None, now: datetime) -> None:
    """A requested ``as_of`` must lie where events may: not before the event floor, not
    later than now plus the allowed clock skew (the same bounds as posted events)."""
    if as_of is None:
        return
    latest = now + timedelta(seconds=settings.max_future_skew_seconds)
    if not settings.min_event_time <= as_of <= latest:
        raise ProblemError(
            422,
            "Invalid as_of",
            f"as_of {as_of.isoformat()} is outside {settings.min_event_time.isoformat()} .. "
            f"now + {settings.max_future_skew_seconds:g} s",
        )


def _as_of(requested: datetime | None, now: datetime, latest: datetime | None) -> datetime:
    """Default: now, or just after the latest posted event if that is later (so it counts)."""
    if requested is not None:
        return requested.astimezone(UTC)
    if latest is not None and latest >= now:
        return latest + timedelta(microseconds=1)
    return now


async def _visitor_record(state: ServingState, visitor_id: str, key: str | None) -> bytes:
    store = readable_store(state, key)
    if isinstance(store, SqliteScoreStore):
        stored = store.lookup(visitor_id)  # a local read: cheaper than a thread hop
    else:
        stored = await to_thread.run_sync(store.lookup, visitor_id)
    if stored is None:
        raise ProblemError(
            404,
            "Unknown visitor",
            f"no score for visitor {visitor_id!r}: not in the last batch run and no events posted",
        )
    if stored.unexplained is None:
        return stored.record
    # Re-scored from posted events with its top features left for now (explain_events).
    return await state.explainer.submit((visitor_id, stored))


def _lookup_answer(state: ServingState) -> Answer:
    """``GET /v1/visitors/{visitor_id}`` without FastAPI's request machinery (errors go to
    the app's problem handlers, as from any route)."""

    async def answer(scope: Scope, receive: Receive) -> bytes:
        key = None
        if state.settings.read_requires_key:
            key = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-api-key"), None
            )
        return await _visitor_record(state, scope["path_params"]["visitor_id"], key)

    return answer


def _register_reads(app: FastAPI, lookup_answer: Answer) -> None:
    @app.get(
        LOOKUP_ROUTE,
        responses={200: {"model": VisitorScore}, **_PROBLEMS},
        tags=["scores"],
        openapi_extra=KEY_PARAMETER,
    )
    async def get_visitor(visitor_id: str, request: Request) -> Response:
        """The latest score of a visitor, its route and reason, and what drove it."""
        state: ServingState = request.app.state.serving
        return _json(await _visitor_record(state, visitor_id, request.headers.get("x-api-key")))

    # FastAPI documents the route; the plain handler answers it, in front of the middleware
    # stack (``serving.hot_routes``) or, for requests that take the stack, behind this route.
    # Building a Request, solving parameters and a Response cost more than the lookup itself
    # (profiled: 40% of a lookup's time in-process); the answers are the same.
    lookup = next(r for r in app.router.routes if getattr(r, "endpoint", None) is get_visitor)
    lookup.app = as_asgi(lookup_answer)  # type: ignore[attr-defined]

    @app.get(
        "/v1/model",
        dependencies=[ReadAccess],
        response_model=ModelResponse,
        responses=_PROBLEMS,
        tags=["model"],
    )
    def get_model(served: ServedDep, state: StateDep) -> ModelResponse:
        """The model being served and the batch run whose scores are live."""
        info = served.loaded.info
        run = state.store.current_run() if state.store else None
        return ModelResponse(
            name=info.name,
            alias=info.alias,
            version=info.version,
            run_id=info.run_id,
            kind=info.kind,
            predictor=info.predictor,
            trained_at=info.trained_at,
            metrics=info.metrics,
            feature_names=list(info.feature_names),
            last_run=orjson.loads(run.to_json()) if run else None,
        )


def _register_scoring(app: FastAPI, clock: Clock, events_answer: Answer) -> None:
    @app.post(
        "/v1/score",
        dependencies=[ReadAccess],
        responses={200: {"model": VisitorScore}, **_PROBLEMS},
        tags=["scores"],
    )
    def score(body: ScoreRequest, served: ServedDep, state: StateDep) -> Response:
        """Score a visitor now from recent events or from features; stores nothing."""
        now = clock()
        _check_as_of(state.settings, body.as_of, now)
        scorer, store = served.scorer, state.store
        if body.events is not None:
            _check_size(state.settings, len(body.events))
            accepted, rejected = state.intake.accept(body.visitor_id, body.events)
            if rejected:
                raise ProblemError(
                    422,
                    "Invalid events",
                    f"{len(rejected)} event(s) rejected",
                    errors=[r.model_dump() for r in rejected],
                )
            as_of = _as_of(body.as_of, now, _latest(accepted))
            features = scorer.features_from_events(accepted, as_of)
        else:
            as_of = _as_of(body.as_of, now, None)
            try:
                features = scorer.features_from_names(body.features or {})
            except FeatureInputError as problem:
                raise ProblemError(422, "Invalid features", str(problem)) from None
        contact = _contact(body.contactability, store, body.visitor_id)
        run = store.current_run() if store else None
        record = scorer.score(
            body.visitor_id, features, as_of=as_of, scored_at=now, contact=contact, run=run
        )
        state.metrics.scores.labels(orjson.loads(record)["route"], "score").inc()
        return _json(record)

    @app.post(
        EVENTS_ROUTE,
        dependencies=[WriteAccess],
        responses={200: {"model": EventsResponse}, **_PROBLEMS},
        tags=["events"],
    )
    async def post_events(
        body: EventsRequest, served: ServedDep, store: StoreDep, state: StateDep
    ) -> Response:
        """Append a visitor's new events and return the re-scored, re-routed visitor. Bad
        events are rejected with their reason (ingestion's rules); the rest are applied."""
        return _json(await _post_events(state, clock, body))

    # FastAPI documents the route; the plain handler answers it (as the lookup's), with the
    # same checks (the key before the body is even read) and FastAPI's body semantics:
    # dependency and response machinery cost more per request than a batched re-score.
    route = next(r for r in app.router.routes if getattr(r, "endpoint", None) is post_events)
    route.app = as_asgi(events_answer)  # type: ignore[attr-defined]


async def _post_events(state: ServingState, clock: Clock, body: EventsRequest) -> bytes:
    now = clock()
    _check_size(state.settings, len(body.events))
    _check_as_of(state.settings, body.as_of, now)
    accepted, rejected = await state.intake.accept_async(body.visitor_id, body.events)
    state.metrics.events_accepted.inc(len(accepted))
    if rejected:
        state.metrics.events_rejected.inc(len(rejected))
    if not accepted:
        raise ProblemError(
            422,
            "No valid events",
            "every posted event was rejected",
            errors=[r.model_dump() for r in rejected],
        )
    posted = PostedEvents(
        visitor_id=body.visitor_id,
        accepted=accepted,
        rejected=rejected,
        as_of=_as_of(body.as_of, now, _latest(accepted)),
        scored_at=now,
        contact=Contact(**body.contactability.model_dump()) if body.contactability else None,
    )
    # The re-score runs in the process's re-score thread, with every other request waiting
    # then (``serving.rescoring``); the event loop goes on meanwhile.
    return await state.rescorer.submit(posted)


def _events_answer(state: ServingState, clock: Clock) -> Answer:
    """``POST /v1/events`` without FastAPI's request machinery (errors go to the app's
    problem handlers)."""

    async def answer(scope: Scope, receive: Receive) -> bytes:
        headers = dict(scope["headers"])
        key = headers.get(b"x-api-key")
        scoring_for_writes(state, None if key is None else key.decode("latin-1"))
        body = request_body(EventsRequest, await read_body(receive), headers)
        return await _post_events(state, clock, body)

    return answer


def _latest(accepted: list[dict[str, Any]]) -> datetime | None:
    """The time of the latest accepted history event (None for none)."""
    if not accepted:
        return None
    return _EPOCH + timedelta(microseconds=max(e["event_time"] for e in accepted))


def _contact(given: object, store: ScoreStore | None, visitor_id: str) -> Contact:
    if given is not None:
        return Contact(**given.model_dump())  # type: ignore[attr-defined]
    return Contact.from_record(store.get_record(visitor_id) if store else None)


def _register_operations(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up (liveness)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
        tags=["operations"],
    )
    async def readyz(state: StateDep) -> Response:
        """Ready to score: a model is loaded and the store answers."""
        if state.store is None:
            await to_thread.run_sync(state.open_store)
        store = state.store  # pinged in a thread: a stalled store must not block the loop
        store_ok = store is not None and await to_thread.run_sync(store.ping)
        reason = state.model_problem or (
            None if store_ok else state.store_problem or "the score store does not answer"
        )
        served = state.served
        body = Readiness(
            ready=reason is None,
            store=store_ok,
            reason=reason,
            model_version=served.loaded.info.version if served else None,
        )
        return _json(body.model_dump_json().encode(), 200 if body.ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    async def metrics(state: StateDep) -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/admin/reload",
        dependencies=[WriteAccess],
        response_model=ReloadResponse,
        responses=_PROBLEMS,
        tags=["operations"],
    )
    def reload(state: StateDep) -> ReloadResponse:
        """Load the model the alias points at now; on failure keep serving the old one."""
        outcome = state.reload()
        if not outcome.reloaded:
            raise ProblemError(
                503,
                "Reload failed",
                f"{outcome.message}; still serving version {outcome.previous}"
                if outcome.previous
                else outcome.message,
            )
        return ReloadResponse(
            reloaded=True,
            model_version=outcome.version,
            previous_version=outcome.previous,
            message=outcome.message,
        )


async def _retry_model(state: ServingState, every: float) -> None:
    """Startup loaded no model (registry down, no champion yet): try again until one loads,
    so the process becomes ready by itself; alias polling, if set, takes over after."""
    while state.served is None:
        await asyncio.sleep(every)
        try:
            await to_thread.run_sync(state.reload)
        except Exception:  # reload reports its own failures; this loop must not die
            log.exception("model retry failed")


async def _poll_alias(state: ServingState, every: float) -> None:
    """Reload when the alias moves (or first points somewhere); never dies of an error."""
    while True:
        await asyncio.sleep(every)
        current = state.served.loaded.info.version if state.served else None
        try:
            registered = await to_thread.run_sync(state.registered_version)
            if registered is not None and registered != current:
                log.info("alias moved to version %s: reloading", registered)
                await to_thread.run_sync(state.reload)
        except Exception:  # the next poll tries again
            log.exception("alias poll failed")


def _answer_store_failures(app: FastAPI) -> None:
    """A store that stops answering mid-call is a 503 with the reason, not a 500."""

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.error("score store failed on %s: %s", request.url.path, exc)
        return problem_response(
            Problem(title="Store unavailable", status=503, detail=f"score store: {exc}")
        )

    app.add_exception_handler(StoreUnavailable, unavailable)
    app.add_exception_handler(RedisError, unavailable)


class _ServingAPI(FastAPI):
    """FastAPI with the hot routes (``serving.hot_routes``) in front of its middleware stack,
    built when the stack is (at the first request, once every handler is registered)."""

    hot_routes: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.hot_routes is None else self.hot_routes(stack)


def telemetry_config(enabled: bool) -> TelemetryConfig:
    """FastAPI's native OpenTelemetry switched on or off as a whole."""
    return {"tracing": enabled, "metrics": enabled, "logs": enabled}


def create_app(
    settings: ServingSettings, paths: ServingPaths, *, clock: Clock = lambda: datetime.now(UTC)
) -> FastAPI:
    """The API app; nothing is loaded until the lifespan starts."""
    state = ServingState(settings, paths, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await to_thread.run_sync(state.open)
        poll = (
            asyncio.create_task(_poll_alias(state, settings.alias_poll_seconds))
            if settings.alias_poll_seconds
            else None
        )
        retry = (
            asyncio.create_task(_retry_model(state, settings.model_retry_seconds))
            if settings.model_retry_seconds and state.served is None
            else None
        )
        try:
            yield
        finally:
            for task in (poll, retry):
                if task is not None:
                    task.cancel()
            state.close()

    app = _ServingAPI(
        title="Propensity scoring",
        version="1",
        lifespan=lifespan,
        description="Purchase propensity scores, routes and real-time re-scoring.",
        telemetry=telemetry_config(settings.opentelemetry),
    )
    app.state.serving = state
    install_problem_handlers(app)
    _answer_store_failures(app)
    lookup, events = _lookup_answer(state), _events_answer(state, clock)
    _register_reads(app, lookup)
    _register_scoring(app, clock, events)
    _register_operations(app)
    recorder = RequestRecorder(state.metrics)
    app.add_middleware(ContentLengthLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, recorder=recorder)
    if not settings.opentelemetry:  # with tracing on, every request takes the traced router
        app.hot_routes = lambda stack: HotRoutes(
            stack,
            lookup=lookup,
            events=events,
            exception_handlers=app.exception_handlers,
            recorder=recorder,
            max_body_bytes=settings.max_body_bytes,
        )
    return app
