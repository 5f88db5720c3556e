"""Rate limits and what an outsider learns (issue 16, item 3), over HTTP on the real database: wrong tokens per
address end in 429 before any token is looked at, shared by two API processes; writes per principal end in
429; an unauthenticated caller gets the same 401 whether an exchange exists or not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest_asyncio

from clients.api import Principal, create_app
from clients.api.rate_limits import RateLimits, RateLimitSettings
from clients.client import ExchangeClient
from tests.api.helpers import APPLICANT, OFFICER, OTHER_APPLICANT, auth, body, cancel, token_table

LIMITS = RateLimitSettings(writes_per_minute=3, auth_failures=3, auth_failure_window_s=600)


@pytest_asyncio.fixture(loop_scope="session")
async def two_processes(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, partnership: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two API apps (as two processes would be) over one database, both seen from one fresh client address."""
    address = f"192.0.2.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:6]}"
    clients = []
    for _ in range(2):
        app = create_app(dev_client, pg_pool, token_table(partnership), rate_limits=RateLimits(pg_pool, LIMITS))
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://api"))
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            await client.aclose()


async def test_wrong_tokens_end_in_429_for_the_address_on_every_process(
    two_processes: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """Requests with no token are 401 and not counted; three wrong tokens (two on one process, one on the other)
    are 401; then the address gets 429 with Retry-After on both processes, even with a valid token, so a right
    guess teaches nothing."""
    first, second = two_processes
    for _ in range(5):
        assert (await first.get("/exchanges")).status_code == 401, "no token: nothing guessed, nothing counted"
    for client in (first, first, second):
        wrong = await client.get("/exchanges", headers=auth(uuid.uuid4().hex + uuid.uuid4().hex))
        assert wrong.status_code == 401, wrong.text
    for client in (first, second):
        blocked = await client.get("/exchanges", headers=auth(OFFICER))
        assert blocked.status_code == 429, blocked.text
        assert 1 <= int(blocked.headers["retry-after"]) <= LIMITS.auth_failure_window_s
        assert blocked.json()["title"] == "Too many requests"


async def test_writes_past_the_rate_are_refused_per_principal(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, partnership: str
) -> None:
    """Three writes a minute for the officer (refused bodies count: the limit runs before the body), then 429
    with Retry-After; another principal still writes; reads are not limited."""
    # A fresh officer, so that other tests' writes in this minute do not count.
    officer = f"tok-officer-{uuid.uuid4().hex}"
    tokens = {**token_table(partnership), officer: Principal(subject=f"officer-{uuid.uuid4().hex[:8]}", role="officer")}
    app = create_app(dev_client, pg_pool, tokens, rate_limits=RateLimits(pg_pool, LIMITS))
    transport = httpx.ASGITransport(app=app, client=(f"writer-{uuid.uuid4().hex[:8]}", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        answers = [(await api.post("/exchanges", json={}, headers=auth(officer))).status_code for _ in range(4)]
        assert answers[:3] == [422, 422, 422], answers
        assert answers[3] == 429, answers
        limited = await api.post("/exchanges", json={}, headers=auth(officer))
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert (await api.get("/exchanges", headers=auth(officer))).status_code == 200, "reads are not limited"
        assert (await api.post("/exchanges", json={}, headers=auth(APPLICANT))).status_code == 422


async def test_an_outsider_learns_nothing_of_which_exchanges_exist(api: httpx.AsyncClient, partnership: str) -> None:
    """Without a token, and with a token that may not read it, an existing exchange answers exactly as an id
    that was never used: 401 before any lookup, then 404 with the same problem."""
    data = body(partnership, submitted_by="applicant-ola")
    assert (await api.post("/exchanges", json=data, headers=auth(APPLICANT))).status_code == 201
    app_id, absent_id = data["application_id"], f"app-{uuid.uuid4().hex[:10]}"
    for path in ("/exchanges/{}", "/exchanges/{}/explanation", "/exchanges/{}/evidence"):
        existing = await api.get(path.format(app_id))
        absent = await api.get(path.format(absent_id))
        assert existing.status_code == absent.status_code == 401
        assert existing.json() == absent.json()
        existing = await api.get(path.format(app_id), headers=auth(OTHER_APPLICANT))
        absent = await api.get(path.format(absent_id), headers=auth(OTHER_APPLICANT))
        assert existing.status_code == absent.status_code == 404, (existing.text, absent.text)
        assert existing.text.replace(app_id, "ID") == absent.text.replace(absent_id, "ID")
    withdraw = {"actor_id": "applicant-piet", "reason": "not mine"}
    posted = await api.post(f"/exchanges/{app_id}/updates/withdraw", json=withdraw, headers=auth(OTHER_APPLICANT))
    never = await api.post(f"/exchanges/{absent_id}/updates/withdraw", json=withdraw, headers=auth(OTHER_APPLICANT))
    assert posted.status_code == never.status_code == 404
    assert posted.text.replace(app_id, "ID") == never.text.replace(absent_id, "ID")
    await cancel(api, partnership, app_id)
