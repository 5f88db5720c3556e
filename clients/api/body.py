"""Strict JSON bodies: the API accepts exactly what the workflow accepts, and documents the model it expects.

FastAPI validates a body parameter in pydantic's lax Python mode (`"5"` would pass as 5, `1` as true),
while the workers decode every payload in strict JSON mode (schemas/converter.py). So no route declares a
pydantic body parameter: each depends on a `StrictBody(model, example)`, which reads the raw body and
validates it with `clients.client.parse`, the same strict path the Python client and the CLI use. The
app's OpenAPI hook (clients/api/app.py) finds every StrictBody and writes its requestBody: a $ref to the
model's component schema and the example.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.api.problems import ProblemError, invalid, problem_response
from clients.client import InvalidInput, parse

M = TypeVar("M", bound=BaseModel)
JSON_MEDIA_TYPE = "application/json"


class StrictBody(Generic[M]):
    """A dependency that returns the request's JSON body parsed strictly into `model` (422 naming each field)."""

    def __init__(self, model: type[M], example: Mapping[str, Any], description: str = "") -> None:
        self.model = model
        self.example = dict(example)
        doc = (model.__doc__ or "").strip()
        self.description = description or (doc.splitlines()[0] if doc else "")

    async def __call__(self, request: Request) -> M:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE and not media_type.endswith("+json"):
            raise ProblemError(
                415,
                "Unsupported media type",
                f"the body must be JSON, got Content-Type {media_type or '(none)'!r}",
                [("Content-Type", f"expected {JSON_MEDIA_TYPE}")],
            )
        raw = await request.body()
        try:
            # NaN and Infinity are not JSON: Python's parser would take them, the workers' would not.
            data = json.loads(raw, parse_constant=_not_json)
        except ValueError as error:
            raise invalid([("body", f"not valid JSON ({error})")]) from None
        if not isinstance(data, dict):
            raise invalid([("body", f"must be a JSON object ({self.model.__name__})")])
        unstorable = text_problems(data)
        if unstorable:
            raise invalid(unstorable)
        try:
            return parse(self.model, data)
        except InvalidInput as error:
            raise invalid(error.errors) from None


# Postgres text cannot hold U+0000, and UTF-8 cannot carry a lone surrogate (`"\ud800"` is valid JSON
# text): such strings would pass the models, then fail in the read model or the audit trail (an activity
# retrying for ever). Refused at the door, naming the field.
NUL_RULE = "must not contain the NUL character (U+0000)"
SURROGATE_RULE = "must be valid Unicode (a lone surrogate such as \\ud800 is not)"


def _text_rule(text: str) -> str | None:
    if "\x00" in text:
        return NUL_RULE
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_RULE
    return None


def text_problems(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(dotted path, rule) for every string or key in a JSON value that Postgres or UTF-8 cannot hold."""
    if isinstance(value, str):
        rule = _text_rule(value)
        return [(path or "body", rule)] if rule else []
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            key_rule = _text_rule(key)
            found += [(child, key_rule)] if key_rule else text_problems(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += text_problems(item, f"{path}.{index}" if path else str(index))
    return found


@asynccontextmanager
async def multipart_form(
    request: Request, *, max_files: int, max_fields: int, max_part_size: int
) -> AsyncIterator[FormData]:
    """The request's multipart form, within these limits; a malformed one is 422 naming `body`.

    Starlette answers a broken multipart body (no boundary, too many fields or files, a part too large)
    with its own 400 and no field; the contract's answer to a body it cannot accept is the 422 problem
    naming the field, as for JSON (found by the fuzz, issue 16). A body past the route's byte limit
    stays 413 (BodyLimit raises it while the form is read).
    """
    try:
        form = await request.form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
    except MultiPartException as error:
        raise invalid([("body", f"not a valid multipart/form-data body ({error.message})")]) from None
    except StarletteHTTPException as error:
        if error.status_code != 400:
            raise
        raise invalid([("body", f"not a valid multipart/form-data body ({error.detail})")]) from None
    try:
        yield form
    finally:
        await form.close()


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def request_body_schema(body: StrictBody[Any]) -> dict[str, Any]:
    """The OpenAPI requestBody of a StrictBody: the model's component and its example."""
    schema: dict[str, Any] = {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": {"$ref": f"#/components/schemas/{body.model.__name__}"},
                "example": body.example,
            }
        },
    }
    if body.description:
        schema["description"] = body.description
    return schema


def body_models(dependencies: list[Any]) -> list[StrictBody[Any]]:
    """Every StrictBody among a route's dependencies (FastAPI `Dependant`s), depth first."""
    found: list[StrictBody[Any]] = []
    for dependant in dependencies:
        if isinstance(dependant.call, StrictBody):
            found.append(dependant.call)
        found.extend(body_models(dependant.dependencies))
    return found


class BodyTooLarge(StarletteHTTPException):
    """A request body past its route's limit; the app answers it as a 413 problem naming the limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, f"the body is larger than this operation accepts ({limit_bytes} bytes)")
        self.limit_bytes = limit_bytes


class BodyLimit:
    """ASGI middleware: refuse a request body past a limit, before it is read whole (or at all).

    A declared Content-Length past the limit is answered at once; a body sent without one (chunked) is
    counted as it is read and refused at the first byte too many. One limit for every route, and larger
    ones for the few routes that take files (evidence uploads), matched by method and path.
    """

    def __init__(self, app: ASGIApp, limit_bytes: int, larger: Mapping[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self.limit_bytes = limit_bytes
        self.larger = [(method, re.compile(path), limit) for (method, path), limit in (larger or {}).items()]

    def limit_for(self, scope: Scope) -> int:
        for method, path, limit in self.larger:
            if scope["method"] == method and path.fullmatch(scope["path"]):
                return limit
        return self.limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large_response(limit)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_within_limit, send)


def too_large_response(limit_bytes: int) -> JSONResponse:
    return problem_response(
        ProblemError(
            413,
            "Content too large",
            f"the body is larger than this operation accepts ({limit_bytes} bytes)",
            [("body", f"at most {limit_bytes} bytes")],
        ).problem
    )
