"""The web app's sign-in is throttled like the API (issue 16, item 3): wrong tokens typed into the sign-in form
count against the browser's address; past the limit even the right token is refused (429) until the window
ends, and the signed-in pages' own calls to the API are never counted against anyone's address."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI

from clients.api import create_app
from clients.api.rate_limits import RateLimits, RateLimitSettings
from clients.client import ExchangeClient
from ledger.evidence_store import FileEvidenceStore
from tests.api.helpers import OFFICER, token_table
from tests.web.test_sessions import sign_in

LIMITS = RateLimitSettings(writes_per_minute=0, auth_failures=2, auth_failure_window_s=600)


def browser(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


async def test_wrong_tokens_in_the_sign_in_form_end_in_429(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, partnership: str, evidence_dir: Path
) -> None:
    """Two wrong tokens from one browser are 401 each; the third attempt, with the right token, is 429 and opens
    no session; another browser signs in, and its pages (the API called in process) work."""
    app = create_app(
        dev_client,
        pg_pool,
        token_table(partnership),
        rate_limits=RateLimits(pg_pool, LIMITS),
        evidence_store=FileEvidenceStore(evidence_dir),
    )
    async with browser(app, f"198.51.100.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}") as guesser:
        for _ in range(2):
            assert (await sign_in(guesser, uuid.uuid4().hex + uuid.uuid4().hex)).status_code == 401
        blocked = await sign_in(guesser, OFFICER)
        assert blocked.status_code == 429, blocked.text
        assert "cx_session" not in blocked.headers.get("set-cookie", "")
    async with browser(app, f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}") as colleague:
        assert (await sign_in(colleague, OFFICER)).status_code == 303
        for _ in range(4):  # more page loads than the limit: in-process calls carry no address
            assert (await colleague.get("/app/officer")).status_code == 200
