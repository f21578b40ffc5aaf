"""The two hot routes, answered in front of the middleware stack.

``GET /v1/visitors/{visitor_id}`` and ``POST /v1/events`` carry nearly all of the API's
traffic. Under load, Starlette's middleware stack and router around them (seven layers, each
wrapping ``send``) took more of a lookup's time than the lookup itself: 37% of the process's
GIL time in ``benchmarks.api``'s lookup run, measured with py-spy. ``HotRoutes`` sits in
front of that stack and answers plain requests of those two routes itself, with the same
handlers, the app's own exception handlers and the same request metrics.

Everything else goes through the full stack, where FastAPI documents and answers the same
two routes with the same handlers: another route or method (HEAD included), a body without a
declared size or larger than ``max_body_bytes`` (the stack reads or refuses it), a root path.

The hot routes reproduce the app's own middleware (``REPRODUCED``: the body limit and the
request metrics) and nothing else: ``check_reproduced`` refuses to build the app when the
stack holds any other (CORS, GZip, trusted hosts, tracing), so that none can silently skip
the two busiest routes.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.api.asgi import send_json
from serving.api.body_limit import ContentLengthLimit
from serving.api.metrics import CLIENT_CLOSED, MetricsMiddleware, RequestRecorder

#: A hot route's handler: the JSON body of its 200 answer, or an exception for the app's
#: exception handlers.
Answer = Callable[[Scope, Receive], Awaitable[bytes]]

#: The routes' paths, declared once: FastAPI registers them (``serving.api.app``) and the hot
#: routes match and count requests under the same templates.
LOOKUP_ROUTE = "/v1/visitors/{visitor_id}"
EVENTS_ROUTE = "/v1/events"
_LOOKUP_PREFIX = LOOKUP_ROUTE.removesuffix("{visitor_id}")

#: The middleware whose effect the hot routes reproduce: the body limit
#: (``declared_size_within``, larger bodies take the stack) and the request metrics.
REPRODUCED: frozenset[type] = frozenset({ContentLengthLimit, MetricsMiddleware})


class UnreproducedMiddleware(RuntimeError):
    """The stack holds middleware the hot routes would skip."""


def check_reproduced(middleware: Sequence[Middleware]) -> None:
    """Refuse (``UnreproducedMiddleware``) a stack with middleware outside ``REPRODUCED``."""
    skipped = sorted({m.cls.__name__ for m in middleware if m.cls not in REPRODUCED})  # type: ignore[attr-defined]
    if skipped:
        raise UnreproducedMiddleware(
            f"the hot routes (lookups and event posts) would skip middleware {skipped}: "
            "set PROPENSITY_SERVING__HOT_ROUTES=false to run it on every request, or make "
            "serving.api.hot_routes reproduce it"
        )


def as_asgi(answer: Answer) -> ASGIApp:
    """The handler as the ASGI app of its FastAPI route (the full stack's way in)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, await answer(scope, receive))

    return app


def declared_size_within(headers: list[tuple[bytes, bytes]], limit: int) -> bool:
    """A ``Content-Length`` no larger than ``limit`` and no transfer encoding."""
    length = None
    for name, value in headers:
        if name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            return False
    return length is not None and length.isdigit() and int(length) <= limit


class HotRoutes:
    """ASGI app: the lookup and event routes answered directly, the rest by ``stack``."""

    def __init__(
        self,
        stack: ASGIApp,
        *,
        lookup: Answer,
        events: Answer,
        exception_handlers: Mapping[Any, Callable[..., Any]],
        recorder: RequestRecorder,
        max_body_bytes: int,
    ) -> None:
        self.stack = stack
        self._lookup = lookup
        self._events = events
        self._handlers = exception_handlers
        self._recorder = recorder
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith(_LOOKUP_PREFIX):
                # The route's ``{visitor_id}``: one non-empty path segment, as decoded.
                visitor_id = path[len(_LOOKUP_PREFIX) :]
                if visitor_id and "/" not in visitor_id:
                    scope["path_params"] = {"visitor_id": visitor_id}
                    await self._answer(self._lookup, LOOKUP_ROUTE, scope, receive, send)
                    return
            elif (
                method == "POST"
                and path == EVENTS_ROUTE
                and declared_size_within(scope["headers"], self._max_body_bytes)
            ):
                await self._answer(self._events, EVENTS_ROUTE, scope, receive, send)
                return
        await self.stack(scope, receive, send)

    async def _answer(
        self, answer: Answer, route: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        try:
            body = await answer(scope, receive)
        except ClientDisconnect:
            status = CLIENT_CLOSED  # nobody to answer
        except Exception as exc:
            response = await self._error_response(scope, receive, exc)
            status = response.status_code
            await response(scope, receive, send)
        else:
            status = 200
            await send_json(send, body)
        self._recorder.record(scope["method"], route, status, time.perf_counter() - started)

    async def _error_response(self, scope: Scope, receive: Receive, exc: Exception) -> Response:
        """The response the stack's exception middleware would give (the handler of the
        status code for an HTTP exception, else of the nearest class); re-raises what no
        handler takes, for the server to answer 500."""
        handler = None
        if isinstance(exc, StarletteHTTPException):
            handler = self._handlers.get(exc.status_code)
        for kind in type(exc).__mro__:
            if handler is not None:
                break
            handler = self._handlers.get(kind)
        if handler is None:
            raise exc
        response = handler(Request(scope, receive), exc)
        if inspect.isawaitable(response):
            response = await response
        return response
