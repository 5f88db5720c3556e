"""The web app's door (clients/web/): sign-in with a configured token, session cookies, CSRF on every form,
security headers and nothing from another host. Over HTTP, in process; the browser tests are test_browser_*."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.api.conftest import MakeApi
from tests.api.helpers import OFFICER, token_table


def form_field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name!r} in the page"
    return found.group(1)


async def sign_in(web: httpx.AsyncClient, token: str) -> httpx.Response:
    page = await web.get("/app/signin")
    return await web.post(
        "/app/signin", data={"token": token, "signin_token": form_field(page.text, "signin_token"), "next": ""}
    )


@pytest.fixture
def web(make_api: MakeApi, partnership: str) -> httpx.AsyncClient:
    return make_api(token_table(partnership))


async def test_a_page_without_a_session_leads_to_the_sign_in_page(web: httpx.AsyncClient) -> None:
    root = await web.get("/")
    assert (root.status_code, root.headers["location"]) == (303, "/app/")
    page = await web.get("/app/account")
    assert page.status_code == 303
    assert page.headers["location"] == "/app/signin?next=/app/account"


async def test_sign_in_opens_a_session_in_an_http_only_cookie(web: httpx.AsyncClient) -> None:
    signed = await sign_in(web, OFFICER)
    assert signed.status_code == 303, signed.text
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("cx_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    account = await web.get("/app/account")
    assert account.status_code == 200
    assert "officer" in account.text


async def test_an_unknown_token_or_a_forged_sign_in_form_opens_nothing(web: httpx.AsyncClient) -> None:
    unknown = await sign_in(web, "x" * 20)
    assert unknown.status_code == 401
    assert "not known" in unknown.text
    assert "cx_session" not in unknown.headers.get("set-cookie", "")
    forged = await web.post("/app/signin", data={"token": OFFICER, "signin_token": "made-up", "next": ""})
    assert forged.status_code == 403
    assert "cx_session" not in forged.headers.get("set-cookie", "")


async def test_a_form_without_the_session_csrf_token_is_refused(web: httpx.AsyncClient) -> None:
    await sign_in(web, OFFICER)
    forged = await web.post("/app/signout", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert "security token" in forged.text
    still = await web.get("/app/account")
    assert still.status_code == 200  # the forged sign-out did nothing
    token = form_field(still.text, "csrf_token")
    out = await web.post("/app/signout", data={"csrf_token": token})
    assert out.status_code == 303
    after = await web.get("/app/account")
    assert after.status_code == 303  # signed out: the session row is gone


async def test_next_never_leads_to_another_host(web: httpx.AsyncClient) -> None:
    page = await web.get("/app/signin", params={"next": "https://evil.example/app/x"})
    signed = await web.post(
        "/app/signin",
        data={"token": OFFICER, "signin_token": form_field(page.text, "signin_token"), "next": "//evil.example/"},
    )
    assert signed.headers["location"] == "/app/"


async def test_pages_carry_security_headers_and_load_nothing_from_another_host(web: httpx.AsyncClient) -> None:
    page = await web.get("/app/signin")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"
    assert not re.search(r'(src|href)="(https?:)?//', page.text), "a page must load nothing from another host"
    style = await web.get("/app/static/cx.css")
    assert style.status_code == 200
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", style.text), "a style must fetch nothing from another host"
