"""ASGI guards around the whole app: the caller is authenticated first, and no request runs for ever.

- `Authenticate` checks the bearer token before anything reads the body (issue 11, item 6; issue 16, item 3:
  static or OIDC, and rate limited): a request with no token or an unknown one is 401, whatever its body
  (malformed, oversized or a multipart upload, which FastAPI would otherwise parse before any dependency runs).
  The probes and the docs need no token.
- `Deadline` bounds a request (issue 11, item 4): once its body has arrived, the app has
  `request_deadline_s` to answer, or the caller gets a 504 problem. Each call to Temporal is bounded more
  tightly (clients/api/context.py `engine_call`), so this is the backstop for the rest: a locked row, a
  pool with no free connection.
"""

from __future__ import annotations

import asyncio

import asyncpg
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.api.auth import Principal
from clients.api.context import unauthorised
from clients.api.identities import Identities, Unauthenticated
from clients.api.problems import Problem, ProblemError, problem_response, problem_type
from clients.api.rate_limits import WRITE_METHODS, RateLimits

# /metrics is Prometheus' (programme totals, no exchange's data), scraped without a token like the probes.
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/app"})
# The web app (/app) signs people in with its own session cookie and reaches the API with their token
# (clients/web/door.py), so its requests pass here; everything it does is checked by the API behind.
PUBLIC_PREFIXES = ("/static/swagger-ui/", "/app/")
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
# A key no server puts in a request's scope: only clients/web/door.py's transport sets it (`InProcess`).
IN_PROCESS = "cx.in_process"


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Authenticate:
    """Answer 401 before the body is read unless the bearer token names a principal (static or OIDC).

    In order (issue 16, item 3): an address that used up its failed authentications gets 429 before its token
    is looked at; a missing or wrong token gets 401 (a wrong one counts against the address); a write past the
    principal's rate gets 429. No exchange is looked up before all three, so an outsider learns nothing of
    them. The principal found is left in `scope["state"]` for the routes (clients/api/context.py `principal`).
    """

    def __init__(self, app: ASGIApp, identities: Identities, limits: RateLimits | None = None) -> None:
        self.app = app
        self.identities = identities
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            found = await self._principal(scope)
        except ProblemError as error:
            await problem_response(error.problem, error.headers)(scope, receive, send)
            return
        except DATABASE_ERRORS as error:
            # The rate limits' counts are in Postgres: without it nothing can be counted, so nothing is let
            # through (503, as every route answers when the database is down), rather than an unbounded door.
            title = "Read model unavailable"
            problem = Problem(type=problem_type(title), title=title, status=503, detail=f"postgres: {error}")
            await problem_response(problem)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = found
        await self.app(scope, receive, send)

    async def _principal(self, scope: Scope) -> Principal:
        address = client_address(scope)
        if self.limits is not None and address is not None:
            await self.limits.refuse_blocked_address(address)
        token = bearer_token(Headers(scope=scope))
        if token is None:
            raise unauthorised(None)
        try:
            found = await self.identities.principal(token)
        except Unauthenticated as refused:
            if self.limits is not None and address is not None:
                await self.limits.count_failure(address)
            raise unauthorised(str(refused)) from None
        if self.limits is not None and scope.get("method") in WRITE_METHODS:
            await self.limits.take_write(found.subject)
        return found


def client_address(scope: Scope) -> str | None:
    """The caller's address (after uvicorn's trusted proxy headers), or None for the web app's in-process calls."""
    if scope.get(IN_PROCESS):
        return None
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class InProcess:
    """Marks requests as the web app's own calls to the API (clients/web/door.py): no client address of theirs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, IN_PROCESS: True}, receive, send)


class Deadline:
    """Bound each request: `seconds` after its body arrived (or after it came, with no body) it is answered.

    While a body is still arriving, each chunk moves the deadline on, so a large upload on a slow line is
    not cut while it makes progress (BodyLimit bounds its size). When the deadline passes before the
    answer has started, the caller gets a 504 problem; once an answer has started it cannot be replaced, and
    the connection is closed instead.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        started = False

        async def send_watching(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        deadline = asyncio.timeout(self.seconds)

        async def receive_moving_deadline() -> Message:
            message = await receive()
            deadline.reschedule(loop.time() + self.seconds)
            return message

        try:
            async with deadline:
                await self.app(scope, receive_moving_deadline, send_watching)
        except Exception as error:
            # The cancellation becomes TimeoutError here, unless a library turned it into an error of its own
            # on the way out (the Temporal SDK does for updates): the deadline passed either way.
            if started or not (isinstance(error, TimeoutError) or deadline.expired()):
                raise
            title = "Request timeout"
            problem = Problem(
                type=problem_type(title),
                title=title,
                status=504,
                detail=f"the request was stopped after {self.seconds:g} s; it may or may not have taken effect: "
                "send it again with the same Idempotency-Key to learn which, and to apply it at most once",
            )
            await problem_response(problem)(scope, receive, send)
