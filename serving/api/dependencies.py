"""FastAPI dependencies of the API: the process state, the model, the store, and API keys.

Used as ``Annotated`` aliases by the routes. Keys are compared in constant time
(``ServingState.key_is_valid``); write routes always need one, read routes once any key
is configured (``ServingState.reads_need_key``: ``open_reads`` opens them, a read-only key
from ``read_keys`` opens nothing else). OpenAPI declares the ``ApiKey`` security scheme.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from serving.api.asgi import require_json
from serving.api.problems import ProblemError
from serving.api.state import Served, ServingState
from serving.store.base import ScoreStore


async def _state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


StateDep = Annotated[ServingState, Depends(_state)]
#: The ``ApiKey`` security scheme of the OpenAPI document; the routes check the key.
KEY_SCHEME = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", description="an API key", auto_error=False
)
ApiKey = Annotated[str | None, Security(KEY_SCHEME)]


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The request's ``X-API-Key``, read the same way by every route: several of them are a
    400, never a choice of the first or the last."""
    keys = [value for name, value in headers if name == b"x-api-key"]
    if len(keys) > 1:
        raise ProblemError(
            400, "Several API keys", f"{len(keys)} X-API-Key headers were sent; send one"
        )
    return keys[0].decode("latin-1") if keys else None


async def _one_key(request: Request) -> None:
    presented_key(request.scope["headers"])


async def _json_body(request: Request) -> None:
    if await request.body():  # FastAPI has read it already: this is its cached copy
        require_json(request.headers.get("content-type", "").encode("latin-1") or None)


def _loaded(state: ServingState) -> Served:
    if state.served is None:
        raise ProblemError(503, "Model not loaded", f"cannot score: {state.model_problem}")
    return state.served


def _opened(state: ServingState) -> ScoreStore:
    if state.store is None:
        raise ProblemError(503, "Store unavailable", f"score store: {state.store_problem}")
    return state.store


async def _served(state: StateDep) -> Served:
    return _loaded(state)


async def _store(state: StateDep) -> ScoreStore:
    return _opened(state)


def _check_key(state: ServingState, key: str | None, *, reading: bool = False) -> None:
    if not (state.has_keys or (reading and state.has_read_keys)):
        raise ProblemError(
            401,
            "Reads disabled" if reading else "Writes disabled",
            "no API keys are configured on the server (PROPENSITY_SERVING__API_KEYS)",
        )
    if not state.key_is_valid(key, reading=reading):
        raise ProblemError(
            401,
            "Unauthorized",
            "a valid X-API-Key header is required",
            headers={"WWW-Authenticate": "ApiKey"},
        )


async def _write_access(state: StateDep, key: ApiKey = None) -> None:
    _check_key(state, key)


async def _read_access(state: StateDep, key: ApiKey = None) -> None:
    if state.reads_need_key:
        _check_key(state, key, reading=True)


def readable_store(state: ServingState, presented_key: str | None) -> ScoreStore:
    """Read access, a loaded model and the store, checked inline by the lookup route:
    FastAPI's dependency resolution costs more than the lookup itself (profiled), so the hot
    path resolves none."""
    if state.reads_need_key:
        _check_key(state, presented_key, reading=True)
    if state.served is None and not state.settings.lookups_without_model:
        # Not ready means not ready: a stored score may come from a model since withdrawn,
        # and a caller (or load balancer) should see one answer, not some routes working.
        raise ProblemError(503, "Model not loaded", f"cannot answer: {state.model_problem}")
    return _opened(state)


def scoring_for_writes(state: ServingState, presented_key: str | None) -> None:
    """Write access, a loaded model and the store, checked inline by the events route in the
    order its dependencies would check them (key, model, store)."""
    _check_key(state, presented_key)
    _loaded(state)
    _opened(state)


ServedDep = Annotated[Served, Depends(_served)]
StoreDep = Annotated[ScoreStore, Depends(_store)]
ReadAccess = Depends(_read_access)
WriteAccess = Depends(_write_access)
#: On every FastAPI route (the app's dependencies); the hot handlers call ``presented_key``.
OneKey = Depends(_one_key)
#: On routes with a JSON body: 415 for anything else.
JsonBody = Depends(_json_body)
#: The lookup's OpenAPI security (FastAPI documents it, ``lookup_answer`` checks the key).
KEY_PARAMETER: dict[str, Any] = {"security": [{"ApiKey": []}]}
