"""Plain ASGI pieces of the hot routes (``serving.api.app``): FastAPI still documents and
matches them, these answer them with FastAPI's own semantics for the body (content type,
error locations, status codes), without its per-request dependency and response machinery.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Send

from serving.api.problems import UNPARSED_BODY, ProblemError, quoted

Body = TypeVar("Body", bound=BaseModel)
_JSON = b"application/json"
#: Nineteen digits or more: an integer that may not fit 64 bits.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def require_json(content_type: bytes | None) -> None:
    """A body must be declared JSON (``application/json`` or ``…+json``): anything else, or
    no ``Content-Type`` at all, is a 415 (as FastAPI's strict content type, which keeps a
    browser's form post from passing for JSON)."""
    kind = (content_type or b"").split(b";")[0].strip().lower()
    if kind == _JSON or (kind.startswith(b"application/") and kind.endswith(b"+json")):
        return
    given = f"got {quoted(content_type.decode('latin-1'))}" if content_type else "none was given"
    raise ProblemError(
        415, "Unsupported media type", f"the body must be sent as application/json; {given}"
    )


def request_body(model: type[Body], raw: bytes, headers: dict[bytes, bytes]) -> Body:
    """The body as FastAPI reads it for a ``model`` parameter: errors located under ``body``
    (422), unreadable JSON 422 with its position, anything else unparsable 400; a body not
    declared JSON is a 415 (``require_json``)."""
    return validated_body(model, parsed_body(raw, headers), raw)


def parsed_body(raw: bytes, headers: dict[bytes, bytes]) -> Any:
    """The JSON of a body (None for none), with ``request_body``'s errors: for a route that
    picks its model by the body's shape before validating it (``validated_body``)."""
    content: Any = None
    if raw:
        require_json(headers.get(b"content-type"))
        try:
            content = _parse_json(raw)
        except json.JSONDecodeError as problem:
            error = {
                "type": "json_invalid",
                "loc": ("body", problem.pos),
                "msg": "JSON decode error",
                "ctx": {"error": problem.msg},
            }
            raise RequestValidationError([error], body=raw) from None
        except Exception:
            raise StarletteHTTPException(400, UNPARSED_BODY) from None
    return content


def validated_body(model: type[Body], content: Any, raw: bytes) -> Body:
    """``content`` (from ``parsed_body``) as ``model``, errors located under ``body``."""
    if content is None:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing], body=raw)
    try:
        return model.model_validate(content)
    except ValidationError as problem:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in problem.errors(include_url=False)]
        raise RequestValidationError(errors, body=content) from None


def _parse_json(raw: bytes) -> Any:
    """The standard parser's reading, as FastAPI's: it reads NaN, Infinity, huge numbers,
    lone surrogates and UTF-16, which validation then rejects with a reason. orjson reads
    the rest the same, four times faster (it was a tenth of the event loop's time on event
    posts), and fails on all of those: the standard parser then reads them, or explains why
    not."""
    if _LONG_NUMBER.search(raw) is None:  # orjson reads integers past 64 bits as floats
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


async def send_json(send: Send, body: bytes) -> None:
    headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
