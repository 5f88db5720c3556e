"""What every page module uses: who is signed in, their door to the API, forms checked for CSRF, rendering.

A page is a FastAPI route on the web app (mounted at /app). It takes `Viewer` (redirected to the sign-in
page without a session), reads through `door(viewer)` (the REST API in process, as the viewer), and
answers with `render(...)`. A form handler takes `CheckedForm` (403 without the session's CSRF token),
acts through the door, and on success sets a flash and redirects (303) to the page to show; on a refusal
it renders the form again with the refusal and the status the API gave (`refused_page`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import asyncpg
import httpx
from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from clients.api.rate_limits import RateLimits
from clients.money import format_eur, format_optional_eur
from clients.web.door import Door, Refused
from clients.web.session import CSRF_FIELD, SignedIn, Tokens, csrf_valid, signed_in
from ledger.web_sessions import clear_flash, set_flash

TEMPLATES_DIR = Path(__file__).parent / "templates"
PREFIX = "/app"


class NotSignedIn(Exception):
    """No live session: a page redirects to the sign-in page (clients/web/app.py handles it)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    """A POST without the session's CSRF token: 403, and nothing is done."""


@dataclass(frozen=True)
class WebContext:
    pool: asyncpg.Pool
    tokens: Tokens
    transport: httpx.AsyncBaseTransport
    templates: Jinja2Templates
    rate_limits: RateLimits | None = None


def web_of(request: Request) -> WebContext:
    web = request.app.state.web
    assert isinstance(web, WebContext), "create_web stores the WebContext in app.state"
    return web


async def viewer(request: Request) -> SignedIn:
    found = await signed_in(request, web_of(request).pool, web_of(request).tokens)
    if found is None:
        raise NotSignedIn(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return found


Viewer = Annotated[SignedIn, Depends(viewer)]


async def checked_form(request: Request, who: Viewer) -> FormData:
    """The POSTed form, once its CSRF token is the session's; CsrfRefused otherwise."""
    form = await request.form()
    if not csrf_valid(who.csrf_token, form.get(CSRF_FIELD)):
        raise CsrfRefused
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def door(request: Request, who: SignedIn) -> Door:
    return Door(web_of(request).transport, who.token)


def page_url(path: str) -> str:
    return PREFIX + path


async def redirect_with(request: Request, who: SignedIn, path: str, message: str) -> Response:
    """After an action: the message shown once on the next page, and a 303 to it (no resubmit on reload)."""
    await set_flash(web_of(request).pool, who.session.id_sha256, message)
    return RedirectResponse(page_url(path), status_code=303)


def signin_redirect(next_path: str) -> Response:
    return RedirectResponse(f"{PREFIX}/signin?next={quote(next_path, safe='/')}", status_code=303)


async def render(
    request: Request, template: str, who: SignedIn | None, *, status_code: int = 200, **context: Any
) -> Response:
    """A page: the template with the viewer, their CSRF token, navigation and the one-shot message."""
    web = web_of(request)
    # The message came with the session row; a page without one costs no write.
    flash = who.session.flash if who is not None else None
    if who is not None and flash is not None:
        await clear_flash(web.pool, who.session.id_sha256)
    response = web.templates.TemplateResponse(
        request,
        template,
        {
            "viewer": who.principal if who else None,
            "csrf_field": CSRF_FIELD,
            "csrf_token": who.csrf_token if who else "",
            "flash": flash,
            "nav": navigation(who),
            "prefix": PREFIX,
            **context,
        },
        status_code=status_code,
    )
    return response


async def refused_page(request: Request, template: str, who: SignedIn, refused: Refused, **context: Any) -> Response:
    """The form again, with the API's refusal (title, detail, each field and its rule), nothing changed."""
    status = refused.status if 400 <= refused.status < 500 else 502
    return await render(request, template, who, status_code=status, refused=refused, **context)


def navigation(who: SignedIn | None) -> list[tuple[str, str]]:
    """The menu for the viewer's role: (label, path)."""
    if who is None:
        return []
    role = who.principal.role
    if role == "reviewer":
        return [("Inbox", "/inbox")]
    if role == "applicant":
        return [("My exchanges", "/mine")]
    if role in ("officer", "ops"):
        return [
            ("Dashboard", "/officer"),
            ("Budgets", "/officer/budgets"),
            ("Late and stuck", "/officer/late"),
            ("Payment orders", "/officer/payments"),
            ("Import", "/officer/import"),
        ]
    return []


def home_path(who: SignedIn) -> str:
    nav = navigation(who)
    return nav[0][1] if nav else "/account"


# Filters: amounts and dates as people read them ---------------------------------------------------------


def _eur(cents: int | None) -> str:
    return format_optional_eur(cents, "-") if cents is None else format_eur(cents)


def _date(value: str | date | None) -> str:
    if value is None or value == "":
        return "-"
    parsed = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    return parsed.strftime("%d %b %Y")


def _datetime(value: str | datetime | None) -> str:
    if value is None or value == "":
        return "-"
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.strftime("%d %b %Y %H:%M %Z").strip()


def templates() -> Jinja2Templates:
    engine = Jinja2Templates(directory=str(TEMPLATES_DIR))
    engine.env.autoescape = True
    engine.env.filters["eur"] = _eur
    engine.env.filters["day"] = _date
    engine.env.filters["when"] = _datetime
    return engine
