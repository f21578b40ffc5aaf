"""The scoring routes: score lookups, what-if scoring and event intake with re-scoring.

``/v1/score`` is a plain ``def`` (FastAPI runs it in its thread pool); the lookup reads a
local store directly, because a thread hop costs more than the read; posted events are
re-scored in batches by the process's re-score thread (``serving.api.rescoring``). The
lookup and the event route are answered by plain handlers, in front of the middleware stack
for plain requests (``serving.api.hot_routes``) and behind their documented FastAPI routes
for the rest.
"""

from __future__ import annotations

import logging
from asyncio import gather
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

import orjson
from anyio import to_thread
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from starlette.types import Receive, Scope

from serving.api.asgi import parsed_body, read_body, validated_body
from serving.api.dependencies import (
    KEY_PARAMETER,
    JsonBody,
    ReadAccess,
    ServedDep,
    StateDep,
    StoreDep,
    WriteAccess,
    presented_key,
    readable_store,
    scoring_for_writes,
)
from serving.api.ga4_intake import Ga4Body
from serving.api.hot_routes import EVENTS_ROUTE, LOOKUP_ROUTE, Answer, as_asgi
from serving.api.problems import (
    PROBLEM_TYPE,
    Problem,
    ProblemError,
    quoted,
)
from serving.api.realtime import Contact, FeatureInputError
from serving.api.rescoring import PostedEvents
from serving.api.schemas import (
    MAX_VISITOR_ID_LENGTH,
    VISITOR_ID_PATTERN,
    Contactability,
    EventsRequest,
    EventsResponse,
    FeatureWindow,
    ModelResponse,
    ScoreFromEvents,
    ScoreRequest,
    VisitorId,
    VisitorScore,
)
from serving.api.segment import (
    SIGNED_SOURCES,
    TRACKER_MODELS,
    EventsBody,
    SegmentBatch,
    SegmentCall,
    SegmentEventsResponse,
    at_calls,
    calls_of,
    check_signature,
    events_source,
    ga4_events,
    segment_events,
)
from serving.api.state import ServingState
from serving.settings import ServingSettings
from serving.store.base import ScoreStore
from serving.store.sqlite import SqliteScoreStore

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
JSON = "application/json"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Documented problem answers: ``application/problem+json`` bodies with the ``Problem`` shape.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"content": {PROBLEM_TYPE: {"schema": Problem.model_json_schema()}}}
    for status in (400, 401, 404, 413, 422, 503)
}
#: And a body not sent as JSON (``serving.api.asgi.require_json``).
BODY_PROBLEMS = {**PROBLEMS, 415: PROBLEMS[400]}
#: The lookup's path parameter, documented with the rule ``path_visitor_id`` applies.
VisitorIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_VISITOR_ID_LENGTH,
        pattern=VISITOR_ID_PATTERN,
        description="the visitor's id (as in the bodies: at most 256 characters, printable)",
    ),
]


def json_response(payload: bytes, status: int = 200) -> Response:
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


_VISITOR_ID = TypeAdapter(VisitorId)
_PATH_ID = ("path", "visitor_id")


def path_visitor_id(scope: Scope) -> str:
    """The lookup's ``{visitor_id}`` held to the rule of the bodies' ids (``VisitorId``): a
    422 for an id too long, with control or invisible characters, or whose percent-encoded
    bytes are not UTF-8 (the server decodes those to U+FFFD; a lone surrogate is one)."""
    visitor_id: str = scope["path_params"]["visitor_id"]
    if "\ufffd" in visitor_id:  # rare: only then is the raw path worth decoding again
        try:
            unquote_to_bytes(scope.get("raw_path") or b"").decode("utf-8")
        except UnicodeDecodeError:
            error = {"type": "string_unicode", "loc": _PATH_ID, "msg": "Input is not valid UTF-8"}
            raise RequestValidationError([error]) from None
    try:
        return _VISITOR_ID.validate_python(visitor_id)
    except ValidationError as problem:
        errors = [{**e, "loc": _PATH_ID} for e in problem.errors(include_url=False)]
        raise RequestValidationError(errors) from None


async def _visitor_record(state: ServingState, visitor_id: str, key: str | None) -> bytes:
    store = readable_store(state, key)
    if isinstance(store, SqliteScoreStore):
        stored = store.lookup(visitor_id)  # a local read: cheaper than a thread hop
    else:
        stored = await to_thread.run_sync(store.lookup, visitor_id)
    if stored is None:
        if (problem := await to_thread.run_sync(state.run_problem, store)) is not None:
            raise ProblemError(503, "No batch run", problem)
        raise ProblemError(
            404,
            "Unknown visitor",
            f"no score for visitor {quoted(visitor_id)}: not in the last batch run and no events "
            "posted",
        )
    if stored.unexplained is None:
        return stored.record
    # Re-scored from posted events with its top features left for now (explain_events).
    return await state.explainer.submit((visitor_id, stored))


def lookup_answer(state: ServingState) -> Answer:
    """``GET /v1/visitors/{visitor_id}`` without FastAPI's request machinery (errors go to
    the app's problem handlers, as from any route)."""

    async def answer(scope: Scope, receive: Receive) -> bytes:
        key = presented_key(scope["headers"])
        return await _visitor_record(state, path_visitor_id(scope), key)

    return answer


def register_reads(app: FastAPI, lookup_answer: Answer) -> None:
    @app.get(
        LOOKUP_ROUTE,
        responses={200: {"model": VisitorScore}, **PROBLEMS},
        tags=["scores"],
        openapi_extra=KEY_PARAMETER,
    )
    async def get_visitor(visitor_id: VisitorIdPath, request: Request) -> Response:
        """The latest score of a visitor, its route and reason, and what drove it."""
        return json_response(await lookup_answer(request.scope, request.receive))

    # FastAPI documents the route; the plain handler answers it, in front of the middleware
    # stack (``serving.api.hot_routes``) or, for requests that take the stack, behind this route.
    # Building a Request, solving parameters and a Response cost more than the lookup itself
    # (profiled: 40% of a lookup's time in-process); the answers are the same.
    lookup = next(r for r in app.router.routes if getattr(r, "endpoint", None) is get_visitor)
    lookup.app = as_asgi(lookup_answer)  # type: ignore[attr-defined]

    @app.get(
        "/v1/model",
        dependencies=[ReadAccess],
        response_model=ModelResponse,
        responses=PROBLEMS,
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
            feature_config=FeatureWindow(**info.feature_config.model_dump()),
            horizon=info.horizon,
            last_run=orjson.loads(run.to_json()) if run else None,
        )


def register_scoring(app: FastAPI, clock: Clock, events_answer: Answer) -> None:
    @app.post(
        "/v1/score",
        dependencies=[JsonBody, ReadAccess],
        responses={200: {"model": VisitorScore}, **BODY_PROBLEMS},
        tags=["scores"],
    )
    def score(body: ScoreRequest, served: ServedDep, state: StateDep) -> Response:
        """Score a visitor now from recent events or from features; stores nothing."""
        now = clock()
        _check_as_of(state.settings, body.as_of, now)
        scorer, store = served.scorer, state.store
        if isinstance(body, ScoreFromEvents):
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
                features = scorer.features_from_names(body.features)
            except FeatureInputError as problem:
                raise ProblemError(422, "Invalid features", str(problem)) from None
        contact = _contact(body.contactability, store, body.visitor_id)
        run = store.current_run() if store else None
        record = scorer.score(
            body.visitor_id, features, as_of=as_of, scored_at=now, contact=contact, run=run
        )
        state.metrics.scores.labels(orjson.loads(record)["route"], "score").inc()
        return json_response(record)

    @app.post(
        EVENTS_ROUTE,
        dependencies=[JsonBody, WriteAccess],
        responses={200: {"model": EventsResponse | SegmentEventsResponse}, **BODY_PROBLEMS},
        tags=["events"],
    )
    async def post_events(
        body: EventsBody, served: ServedDep, store: StoreDep, state: StateDep
    ) -> Response:
        """Append a visitor's new events and return the re-scored, re-routed visitor. Bad
        events are rejected with their reason (ingestion's rules); the rest are applied.
        Segment and RudderStack track, page and batch calls are taken too, mapped as
        ``ingest --format segment`` maps them, each of their visitors re-scored; with a
        shared secret set they must carry ``X-Signature`` (HMAC-SHA1 of the body). So are
        GA4 Measurement Protocol bodies (``client_id``, ``events`` of ``name`` and
        ``params``), their recommended e-commerce events read, one event per item."""
        if isinstance(body, EventsRequest):
            return json_response(await _post_events(state, clock, body))
        return json_response(await _post_tracked(state, clock, body))

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
        contact_update=body.contactability.model_dump() if body.contactability else None,
    )
    # The re-score runs in the process's re-score thread, with every other request waiting
    # then (``serving.api.rescoring``); the event loop goes on meanwhile.
    return await state.rescorer.submit(posted)


def events_answer(state: ServingState, clock: Clock) -> Answer:
    """``POST /v1/events`` without FastAPI's request machinery (errors go to the app's
    problem handlers)."""

    async def answer(scope: Scope, receive: Receive) -> bytes:
        scoring_for_writes(state, presented_key(scope["headers"]))
        raw = await read_body(receive)
        content = parsed_body(raw, dict(scope["headers"]))
        source = events_source(content)
        if source == "canonical":
            return await _post_events(state, clock, validated_body(EventsRequest, content, raw))
        if source in SIGNED_SOURCES:
            check_signature(state.settings.segment_shared_secret, raw, scope["headers"])
        return await _post_tracked(
            state, clock, validated_body(TRACKER_MODELS[source], content, raw)
        )

    return answer


async def _post_tracked(
    state: ServingState, clock: Clock, body: SegmentCall | SegmentBatch | Ga4Body
) -> bytes:
    """A tracker's body (Segment calls, a GA4 Measurement Protocol body): each visitor's
    events checked and re-scored as a canonical post."""
    now = clock()
    mapped = ga4_events(body, now) if isinstance(body, Ga4Body) else segment_events(calls_of(body))
    _check_size(state.settings, mapped.events)
    rejected, posted = list(mapped.rejected), []
    for visitor, events in mapped.by_visitor.items():
        accepted, refused = await state.intake.accept_async(visitor, events.events)
        rejected += at_calls(refused, events.calls)
        if accepted:
            as_of = _as_of(None, now, _latest(accepted))
            posted.append(PostedEvents(visitor, accepted, [], as_of=as_of, scored_at=now))
    accepted_total = sum(len(p.accepted) for p in posted)
    state.metrics.events_accepted.inc(accepted_total)
    if rejected:
        state.metrics.events_rejected.inc(len(rejected))
    rejected.sort(key=lambda r: r.index)
    if rejected and not posted:
        raise ProblemError(
            422,
            "No valid events",
            "every event of the posted calls was rejected",
            errors=[r.model_dump() for r in rejected],
        )
    answers = [orjson.loads(a) for a in await gather(*(state.rescorer.submit(p) for p in posted))]
    return orjson.dumps(
        {
            "accepted": accepted_total,
            "rejected": [r.model_dump() for r in rejected],
            "ignored": mapped.ignored,
            "scores": [a["score"] for a in answers],
        }
    )


def _latest(accepted: list[dict[str, Any]]) -> datetime | None:
    """The time of the latest accepted history event (None for none)."""
    if not accepted:
        return None
    return _EPOCH + timedelta(microseconds=max(e["event_time"] for e in accepted))


def _contact(given: Contactability | None, store: ScoreStore | None, visitor_id: str) -> Contact:
    update = None if given is None else given.model_dump()
    if update is not None and None not in update.values():  # all given: no store read
        return Contact(**update)
    return Contact.from_record(store.get_record(visitor_id) if store else None).updated(update)
