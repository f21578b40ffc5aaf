"""The real-time API: score lookups, what-if scoring, event intake with re-scoring, model
info, health and metrics. OpenAPI docs at ``/docs``.

``create_app(settings, paths)`` builds the app; its lifespan opens the store and loads the
model (a missing model leaves the app up, not ready, and the scoring routes answer 503 with
the reason). The routes are in ``serving.api.routes`` (scores, events, model) and
``serving.api.operations`` (health, readiness, metrics, reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from redis.exceptions import RedisError
from starlette.types import ASGIApp

from serving.api.body_limit import ContentLengthLimit
from serving.api.dependencies import OneKey
from serving.api.docs_pages import register_docs
from serving.api.head import HeadAsGet
from serving.api.hot_routes import HotRoutes, check_reproduced
from serving.api.metrics import MetricsMiddleware, RequestRecorder
from serving.api.operations import poll_alias, register_operations, retry_model
from serving.api.problems import (
    Problem,
    install_problem_handlers,
    problem_response,
)
from serving.api.routes import events_answer, lookup_answer, register_reads, register_scoring
from serving.api.state import ServingState
from serving.settings import ServingPaths, ServingSettings
from serving.store.base import StoreUnavailable

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


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
    """FastAPI with the hot routes (``serving.api.hot_routes``) in front of its middleware stack,
    built when the stack is (at the first request, once every handler is registered)."""

    hot_routes: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        if self.hot_routes is not None:  # at startup (the lifespan's first call): no request
            check_reproduced(self.user_middleware)  # is ever answered without its middleware
        stack = super().build_middleware_stack()
        # HEAD outermost, so the hot routes and the metrics see it as the GET it runs as.
        return HeadAsGet(stack if self.hot_routes is None else self.hot_routes(stack))


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
            asyncio.create_task(poll_alias(state, settings.alias_poll_seconds))
            if settings.alias_poll_seconds
            else None
        )
        retry = (
            asyncio.create_task(retry_model(state, settings.model_retry_seconds))
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
        dependencies=[OneKey],
        docs_url=None,  # served from the package: serving.api.docs_pages
        redoc_url=None,
    )
    app.state.serving = state
    install_problem_handlers(app)
    _answer_store_failures(app)
    lookup, events = lookup_answer(state), events_answer(state, clock)
    register_reads(app, lookup)
    register_scoring(app, clock, events)
    register_operations(app)
    register_docs(app)
    recorder = RequestRecorder(state.metrics)
    app.add_middleware(ContentLengthLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, recorder=recorder)
    # With tracing on, every request takes the traced router.
    if settings.hot_routes and not settings.opentelemetry:
        app.hot_routes = lambda stack: HotRoutes(
            stack,
            lookup=lookup,
            events=events,
            exception_handlers=app.exception_handlers,
            recorder=recorder,
            max_body_bytes=settings.max_body_bytes,
        )
    return app
