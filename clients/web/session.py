"""Sign-in, session cookies and CSRF for the web app.

A session is opened by signing in with a configured static token (the same principals as the API; an OIDC
sign-in would replace this step, opening the same session from an ID token's claims: docs/adr/0016-web-app.md,
docs/adr/0023-identities-rate-limits-secrets.md). The
browser keeps a random id in an HttpOnly, SameSite=Lax cookie (`Secure` and `__Host-` prefixed on TLS);
Postgres keeps its hash (ledger/web_sessions.py). Every form carries the session's CSRF token and every
POST is refused (403) without it; the sign-in form, before any session, carries a double-submit token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from clients.api.auth import Principal
from clients.api.static_tokens import StaticToken, StaticTokens
from ledger.web_sessions import WebSession, find_session

SESSION_LIFETIME = timedelta(hours=8)  # a working day; then sign in again
COOKIE = "cx_session"
SECURE_COOKIE = "__Host-cx_session"  # on TLS: bound to this host and path /, never sent over plain HTTP
SIGNIN_COOKIE = "cx_signin"
CSRF_FIELD = "csrf_token"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SignedIn:
    """The principal behind a request's session, with its bearer token for the API door."""

    session: WebSession
    principal: Principal
    token: str

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


class Tokens:
    """The configured static tokens, found by their fingerprint (the session row holds only that).

    The table is the API's live one (clients/api/static_tokens.py): a token removed from CX_API_TOKENS_FILE or
    past its `expires` ends its sessions at their next page, like a signed-out one.
    """

    def __init__(self, static: StaticTokens) -> None:
        self._static = static
        self._indexed: Mapping[str, StaticToken] | None = None
        self._by_fingerprint: dict[str, str] = {}

    def find(self, token: str) -> Principal | None:
        return self._static.find(token)

    def by_fingerprint(self, fingerprint: str) -> tuple[str, Principal] | None:
        entries = self._static.entries()
        if entries is not self._indexed:  # the file was re-read: index the new table once
            self._by_fingerprint = {sha256_hex(token): token for token in entries}
            self._indexed = entries
        token = self._by_fingerprint.get(fingerprint)
        who = self._static.find(token) if token is not None else None
        return None if token is None or who is None else (token, who)


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def cookie_name(request: Request) -> str:
    return SECURE_COOKIE if is_tls(request) else COOKIE


async def signed_in(request: Request, pool: asyncpg.Pool, tokens: Tokens) -> SignedIn | None:
    """The request's live session and its principal, or None (no cookie, unknown, expired, token revoked)."""
    session_id = request.cookies.get(cookie_name(request))
    if not session_id or len(session_id) > 128:
        return None
    session = await find_session(pool, sha256_hex(session_id))
    if session is None:
        return None
    found = tokens.by_fingerprint(session.token_fingerprint)
    if found is None:
        return None  # the token was removed from the configuration: its sessions end with it
    token, principal = found
    return SignedIn(session, principal, token)


def set_session_cookie(response: Response, request: Request, session_id: str) -> None:
    response.set_cookie(
        cookie_name(request),
        session_id,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        secure=is_tls(request),
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(cookie_name(request), path="/", httponly=True, secure=is_tls(request), samesite="lax")


def csrf_valid(expected: str | None, given: object) -> bool:
    """Constant-time comparison of the form's token with the session's (or the sign-in cookie's)."""
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(expected or "", given)
