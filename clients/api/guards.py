"""ASGI guards around the whole app: the caller is authenticated first, and no request runs for ever.

- `Authenticate` checks the bearer token before anything reads the body (issue 11, item 6): a request with
  no token or an unknown one is 401, whatever its body (malformed, oversized or a multipart upload, which
  FastAPI would otherwise parse before any dependency runs). The probes and the docs need no token.
- `Deadline` bounds a request (issue 11, item 4): once its body has arrived, the app has
  `request_deadline_s` to answer, or the caller gets a 504 problem. Each call to Temporal is bounded more
  tightly (clients/api/context.py `engine_call`), so this is the backstop for the rest: a locked row, a
  pool with no free connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.api.auth import Principal
from clients.api.context import unauthorised
from clients.api.problems import Problem, problem_response, problem_type

# /metrics is Prometheus' (programme totals, no exchange's data), scraped without a token like the probes.
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/app"})
# The web app (/app) signs people in with its own session cookie and reaches the API with their token
# (clients/web/door.py), so its requests pass here; everything it does is checked by the API behind.
PUBLIC_PREFIXES = ("/static/swagger-ui/", "/app/")


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Authenticate:
    """Answer 401 before the body is read unless the request carries a configured bearer token.

    The principal found is left in `scope["state"]` for the routes (clients/api/context.py `principal`).
    """

    def __init__(self, app: ASGIApp, tokens: Mapping[str, Principal]) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        token = bearer_token(Headers(scope=scope))
        found = self.tokens.get(token) if token else None
        if found is None:
            error = unauthorised(token is not None)
            await problem_response(error.problem, error.headers)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = found
        await self.app(scope, receive, send)


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
