"""The operations routes (health, readiness, metrics, reload) and the background tasks that
keep a model loaded: retry while none is, follow the alias when it moves."""

from __future__ import annotations

import asyncio
import logging

from anyio import to_thread
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.api.dependencies import (
    StateDep,
    WriteAccess,
)
from serving.api.problems import (
    ProblemError,
)
from serving.api.routes import PROBLEMS, json_response
from serving.api.schemas import (
    Readiness,
    ReloadResponse,
)
from serving.api.state import ServingState

log = logging.getLogger(__name__)


def register_operations(app: FastAPI) -> None:
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
        """Ready to score: a model is loaded and the store answers with a published run."""
        if state.store is None:
            await to_thread.run_sync(state.open_store)
        store = state.store  # pinged in a thread: a stalled store must not block the loop
        store_ok = store is not None and await to_thread.run_sync(store.ping)
        reason = state.model_problem or (
            None if store_ok else state.store_problem or "the score store does not answer"
        )
        if reason is None and store is not None:
            reason = await to_thread.run_sync(state.run_problem, store)
        served = state.served
        body = Readiness(
            ready=reason is None,
            store=store_ok,
            reason=reason,
            model_version=served.loaded.info.version if served else None,
        )
        return json_response(body.model_dump_json().encode(), 200 if body.ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    async def metrics(state: StateDep) -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/admin/reload",
        dependencies=[WriteAccess],
        response_model=ReloadResponse,
        responses=PROBLEMS,
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


async def retry_model(state: ServingState, every: float) -> None:
    """Startup loaded no model (registry down, no champion yet): try again until one loads,
    so the process becomes ready by itself; alias polling, if set, takes over after."""
    while state.served is None:
        await asyncio.sleep(every)
        try:
            await to_thread.run_sync(state.reload)
        except Exception:  # reload reports its own failures; this loop must not die
            log.exception("model retry failed")


async def poll_alias(state: ServingState, every: float) -> None:
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
