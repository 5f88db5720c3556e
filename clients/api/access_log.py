"""One access-log line per API request, and the API's HTTP metrics (issue 15, item 6; docs/operations.md).

The outermost ASGI middleware, so that it also sees what the guards answer (401, 413, 504). Per request:
- a request id: the caller's `X-Request-ID` when it is a sane token (visible ASCII, at most 128
  characters), else a new one; returned in the answer's `X-Request-ID` and bound (structlog context
  variables) for every log line written while the request runs;
- one line `http request` with method, route (the template, `/exchanges/{application_id}`, never the raw
  path: bounded label values, no ids in metrics), status, duration_ms, the principal's subject (never the
  token), the request id, and `exchange_id` when the route names one;
- `cx_http_requests_total` and `cx_http_request_seconds` (clients/api/metrics.py) with the same labels.

`bind_exchange_id` is the app-wide dependency that binds `exchange_id` for a route's own log lines once
FastAPI has matched the path.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from fastapi import Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.api.auth import Principal
from clients.api.metrics import ApiMetrics

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[!-~]{1,128}$")
# The path parameter every exchange route names its exchange by (clients/api/routers/).
EXCHANGE_PARAM = "application_id"
UNMATCHED = "<unmatched>"
logger = structlog.stdlib.get_logger("cx.api.access")


def request_id_of(headers: Headers) -> str:
    given = headers.get(REQUEST_ID_HEADER, "")
    return given if _SANE_REQUEST_ID.match(given) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template, under its mount's prefix (the web app's `/app/...`)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    mounted = str(scope.get("app_root_path", "") or "")
    root = str(scope.get("root_path", "") or "")
    prefix = root.removeprefix(mounted) if root.startswith(mounted) else ""
    if isinstance(template, str):
        return prefix + template
    # A mount with no routes of its own (static files): its prefix and a placeholder, never the file's name.
    return prefix + "/{path}" if prefix else UNMATCHED


async def bind_exchange_id(request: Request) -> None:
    """App-wide dependency: `exchange_id` on every log line of a route that names an exchange."""
    exchange_id = request.path_params.get(EXCHANGE_PARAM)
    if exchange_id is not None:
        structlog.contextvars.bind_contextvars(exchange_id=exchange_id)


class AccessLog:
    """Log and count every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(Headers(scope=scope))
        status = 500  # unless an answer starts: an exception that escapes is answered 500 by Starlette

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        before = structlog.contextvars.get_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_s = time.perf_counter() - started
            # The route may have bound the exchange it concerns (a start names it in the body, not the path).
            bound = structlog.contextvars.get_contextvars().get("exchange_id")
            exchange_id = scope.get("path_params", {}).get(EXCHANGE_PARAM) or bound
            # Restore the context as it was: in-process callers (tests, the web app) share one task.
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**before)
            self._record(scope, status, elapsed_s, request_id, exchange_id)

    def _record(self, scope: Scope, status: int, elapsed_s: float, request_id: str, exchange_id: object) -> None:
        method = str(scope.get("method", ""))
        route = route_template(scope)
        self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
        self.metrics.request_seconds.labels(method=method, route=route).observe(elapsed_s)
        principal = scope.get("state", {}).get("principal")
        logger.info(
            "http request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(elapsed_s * 1000, 1),
            principal=principal.subject if isinstance(principal, Principal) else None,
            request_id=request_id,
            **({"exchange_id": exchange_id} if exchange_id is not None else {}),
        )
