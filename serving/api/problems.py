"""Errors as RFC 9457 problem details: JSON a person can read, and never a 500 for bad input."""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
PROBLEM_TYPE = "application/problem+json"
_TITLES = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Too large"}
#: FastAPI's detail when the body is not JSON that ``json.loads`` can read.
UNPARSED_BODY = "There was an error parsing the body"


#: A URI with a scheme (``file:///…``, ``s3://…``) or an absolute path of two parts or more.
_PATHS = re.compile(r"[a-z][a-z0-9+.-]*://\S*|(?<![\w.])/(?:[^\s/'\"]+/)+[^\s'\"]*", re.I)
#: How much of a caller's text a message quotes.
QUOTED_CHARS = 40


def quoted(text: str, limit: int = QUOTED_CHARS) -> str:
    """A short, escaped prefix of a caller's text, for a message: control, invisible and
    surrogate characters escaped by ``repr``, at most ``limit`` characters of the text."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


def without_paths(message: str) -> str:
    """A message for callers: server paths and URIs replaced by ``<path>`` (the full message
    belongs in the log)."""
    return _PATHS.sub("<path>", message)


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class ProblemError(Exception):
    """Raise from a route to answer with a problem (status, title, detail)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail, errors=errors)
        self.headers = headers


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(problem.model_dump(exclude_none=True)),
        status_code=problem.status,
        media_type=PROBLEM_TYPE,
        headers=headers,
    )


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "string_pattern_mismatch":  # the pattern itself helps nobody
        return "is blank, or contains control or invisible formatting characters"
    return str(error.get("msg", ""))


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"location": ".".join(str(p) for p in e.get("loc", ())), "message": _message(e)}
        for e in exc.errors()
    ]


def _http_detail(exc: StarletteHTTPException) -> str:
    if exc.status_code == 400 and exc.detail == UNPARSED_BODY:
        return (
            "the body is not readable JSON (malformed, nested too deeply, or a number out of range)"
        )
    return str(exc.detail)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return problem_response(exc.problem, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"location": "body", "message": "invalid"}
        detail = f"{first['location']}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return problem_response(
            Problem(title="Invalid request", status=422, detail=detail, errors=errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = _TITLES.get(exc.status_code, "Error")
        return problem_response(
            Problem(title=title, status=exc.status_code, detail=_http_detail(exc)),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(
                title="Internal error",
                status=500,
                detail="the server failed to answer; the error is in its log",
            )
        )
