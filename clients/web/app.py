"""The web app for people (issue 14): reviewers, programme officers, ops and applicants, at /app.

Server-rendered (Jinja2, plain HTML forms), served by the API's process and mounted in its app
(clients/api/app.py); every script, style and font is in clients/web/static, and the Content-Security-Policy
allows nothing from another host. Pages read and act only through the REST API in process
(clients/web/door.py), so the API's role table, need-to-know views and strict bodies hold for every page.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import asyncpg
from fastapi import FastAPI, Form, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.api.guards import InProcess
from clients.api.identities import Identities
from clients.api.problems import ProblemError
from clients.api.rate_limits import RateLimits
from clients.web.context import (
    PREFIX,
    CheckedForm,
    CsrfRefused,
    NotSignedIn,
    Viewer,
    WebContext,
    home_path,
    page_url,
    render,
    signin_redirect,
    templates,
    web_of,
)
from clients.web.door import RefusedError, transport_to
from clients.web.pages import applicant, officer, reviewer
from clients.web.session import (
    SESSION_LIFETIME,
    SIGNIN_COOKIE,
    Tokens,
    clear_session_cookie,
    csrf_valid,
    is_tls,
    new_secret,
    set_session_cookie,
    sha256_hex,
    signed_in,
)
from ledger.web_sessions import close_session, open_session

STATIC_DIR = Path(__file__).parent / "static"

# Nothing from another host, no inline script or style, no framing, forms post only here.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every answer of the web app (static files are cached: no `no-store`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith((f"{PREFIX}/static/", "/static/"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if static and name == "cache-control":
                        continue
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_web(
    api_app: ASGIApp, pool: asyncpg.Pool, identities: Identities, rate_limits: RateLimits | None = None
) -> FastAPI:
    """The web app over the API app `api_app` (called in process as each signed-in principal); `rate_limits`
    count the sign-in form's wrong tokens per browser address, as the API does for its callers."""
    web = FastAPI(title="ClusterXchange web", docs_url=None, redoc_url=None, openapi_url=None)
    web.state.web = WebContext(
        pool=pool,
        tokens=Tokens(identities.static),
        transport=transport_to(InProcess(api_app)),
        templates=templates(),
        rate_limits=rate_limits,
    )
    web.add_middleware(SecurityHeaders)
    web.mount("/static", StaticFiles(directory=STATIC_DIR), name="web-static")
    _add_error_pages(web)
    _add_signin(web)
    for module in (reviewer, applicant, officer):
        web.include_router(module.router)
    return web


def _add_error_pages(web: FastAPI) -> None:
    @web.exception_handler(NotSignedIn)
    async def on_not_signed_in(_: Request, error: Exception) -> Response:
        assert isinstance(error, NotSignedIn)
        return signin_redirect(PREFIX + error.next_path if not error.next_path.startswith(PREFIX) else error.next_path)

    @web.exception_handler(CsrfRefused)
    async def on_csrf(request: Request, _: Exception) -> Response:
        who = await signed_in(request, web_of(request).pool, web_of(request).tokens)
        return await render(
            request,
            "error.html",
            who,
            status_code=403,
            title="Form refused",
            detail="This form did not carry this session's security token, so nothing was done. "
            "Open the page again and resubmit it.",
        )

    @web.exception_handler(RefusedError)
    async def on_refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, RefusedError)
        who = await signed_in(request, web_of(request).pool, web_of(request).tokens)
        refused = error.refused
        status = refused.status if 400 <= refused.status < 500 else 502
        return await render(request, "error.html", who, status_code=status, title=refused.title, detail=refused.detail)


def _safe_next(next_path: str | None) -> str | None:
    """Only a path of this app: never another host (an open redirect) or a scheme."""
    if not next_path:
        return None
    parts = urlsplit(next_path)
    if parts.scheme or parts.netloc or not next_path.startswith(PREFIX + "/") or next_path.startswith("//"):
        return None
    return next_path


def _set_signin_cookie(response: Response, request: Request, double_submit: str) -> None:
    """The sign-in form's double-submit token (no session exists yet to hold a CSRF token)."""
    response.set_cookie(
        SIGNIN_COOKIE, double_submit, max_age=900, path=PREFIX, httponly=True, secure=is_tls(request), samesite="strict"
    )


async def _signin_refused(request: Request, next_path: str, status: int, error: str) -> Response:
    """The sign-in page again with why, and a fresh double-submit token."""
    fresh = new_secret()
    response = await render(
        request,
        "signin.html",
        None,
        status_code=status,
        next=_safe_next(next_path) or "",
        signin_token=fresh,
        error=error,
    )
    _set_signin_cookie(response, request, fresh)
    return response


def _add_signin(web: FastAPI) -> None:
    @web.get("/", include_in_schema=False)
    async def home(request: Request, who: Viewer) -> Response:
        return RedirectResponse(page_url(home_path(who)), status_code=303)

    @web.get("/signin", include_in_schema=False)
    async def signin_page(request: Request, next: str | None = None) -> Response:
        double_submit = new_secret()
        response = await render(request, "signin.html", None, next=_safe_next(next) or "", signin_token=double_submit)
        _set_signin_cookie(response, request, double_submit)
        return response

    @web.post("/signin", include_in_schema=False)
    async def signin(
        request: Request,
        token: Annotated[str, Form(max_length=4096)] = "",
        signin_token: Annotated[str, Form(max_length=256)] = "",
        next: Annotated[str, Form(max_length=2048)] = "",
    ) -> Response:
        context = web_of(request)
        if not csrf_valid(request.cookies.get(SIGNIN_COOKIE), signin_token):
            return await render(
                request,
                "signin.html",
                None,
                status_code=403,
                next=_safe_next(next) or "",
                signin_token="",
                error="The sign-in form had expired. Open the sign-in page again.",
            )
        address = request.client.host if request.client else "unknown"
        try:
            if context.rate_limits is not None:
                await context.rate_limits.refuse_blocked_address(address)
        except ProblemError as error:
            return await _signin_refused(request, next, error.problem.status, f"{error.problem.detail}. Try later.")
        who = context.tokens.find(token.strip())
        if who is None:
            if context.rate_limits is not None:
                await context.rate_limits.count_failure(address)
            return await _signin_refused(request, next, 401, "That token is not known. Check it and try again.")
        session_id = secrets.token_urlsafe(32)
        await open_session(
            context.pool,
            id_sha256=sha256_hex(session_id),
            token_fingerprint=sha256_hex(token.strip()),
            subject=who.subject,
            csrf_token=new_secret(),
            lifetime=SESSION_LIFETIME,
        )
        response = RedirectResponse(_safe_next(next) or page_url("/"), status_code=303)
        set_session_cookie(response, request, session_id)
        response.delete_cookie(SIGNIN_COOKIE, path=PREFIX)
        return response

    @web.post("/signout", include_in_schema=False)
    async def signout(request: Request, who: Viewer, form: CheckedForm) -> Response:
        del form  # checked for the CSRF token: a forged sign-out is refused like any other form
        await close_session(web_of(request).pool, who.session.id_sha256)
        response = RedirectResponse(page_url("/signin"), status_code=303)
        clear_session_cookie(response, request)
        return response

    @web.get("/account", include_in_schema=False)
    async def account(request: Request, who: Viewer) -> Response:
        return await render(request, "account.html", who)
