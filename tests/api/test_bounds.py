"""Requests are bounded (issue 11, items 4 and 6): authenticated before the body is read, limited in size,
and answered within a limit even when the engine or the database does not answer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from clients.client import ExchangeClient
from schemas.ids import EXCHANGE_WORKFLOW_TYPE, exchange_workflow_id
from tests.api.conftest import MakeApi
from tests.api.helpers import OFFICER, OPS, auth, fields, officer_of, reviewer_token, token_table
from tests.factories import application
from tests.workflows.conftest import REVIEWERS
from workers.settings import Settings

MIB = 1024 * 1024
ENGINE_TIMEOUT_S = 0.5
# What "within the limit" allows on a loaded test machine beyond the limit itself.
SLACK_S = 2.0


class Chunks:
    """A request body sent chunk by chunk (no Content-Length), counting how much the server asked for."""

    def __init__(self, count: int, size: int = MIB) -> None:
        self.count, self.size, self.sent = count, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.sent += 1
            yield b"x" * self.size


async def test_the_token_is_checked_before_the_body_is_read(api: httpx.AsyncClient) -> None:
    """No token or an unknown one is 401 whatever the body (malformed JSON, a broken upload, 64 MiB that is never
    read); a token whose kind may not act is 403 before its body is parsed; a 64 MiB body with a good token is 413
    after the first MiB past the limit."""
    update = "/exchanges/app-bounds/updates/cancel"
    as_json = {"Content-Type": "application/json"}
    for headers in ({}, auth("not-a-configured-token")):
        malformed = await api.post(update, content=b'{"actor_id": ', headers={**headers, **as_json})
        assert malformed.status_code == 401, malformed.text
        assert fields(malformed) == ["Authorization"], malformed.text
        upload = await api.post(
            "/exchanges/app-bounds/evidence",
            content=b"--broken\r\nnot a form",
            headers={**headers, "Content-Type": "multipart/form-data; boundary=broken"},
        )
        assert upload.status_code == 401, upload.text
        huge = Chunks(64)
        unread = await api.post(update, content=huge, headers={**headers, **as_json})
        assert unread.status_code == 401, (unread.status_code, huge.sent)
        assert huge.sent <= 1, (unread.status_code, huge.sent)
    declared = await api.post(update, content=b"{}", headers={**as_json, "Content-Length": str(64 * MIB)})
    assert declared.status_code == 401

    ops = await api.post(update, content=b'{"actor_id": ', headers={**auth(OPS), **as_json})
    assert ops.status_code == 403, "ops may not cancel: refused before the body is parsed"
    reviewer_upload = await api.post(
        "/exchanges/app-bounds/evidence",
        content=b"--broken\r\nnot a form",
        headers={**auth(reviewer_token(REVIEWERS[0])), "Content-Type": "multipart/form-data; boundary=broken"},
    )
    assert reviewer_upload.status_code == 403, "a reviewer uploads nothing: refused before the form is read"
    huge = Chunks(64)
    too_large = await api.post(update, content=huge, headers={**auth(OFFICER), **as_json})
    assert too_large.status_code == 413, huge.sent
    assert fields(too_large) == ["body"], huge.sent
    assert huge.sent <= 2, huge.sent


async def test_the_body_limit_and_the_engine_timeout_are_configuration(make_api: MakeApi) -> None:
    """CX_API_MAX_BODY_BYTES and CX_API_ENGINE_TIMEOUT_S are read once into Settings (refused when absurd); the app
    built with a 2 KiB limit refuses a 3 KiB body with 413 naming the limit."""
    settings = Settings.from_env({"CX_API_MAX_BODY_BYTES": "2048", "CX_API_ENGINE_TIMEOUT_S": "2.5"})
    assert (settings.api_max_body_bytes, settings.api_engine_timeout_s) == (2048, 2.5)
    defaults = Settings.from_env({})
    assert (defaults.api_max_body_bytes, defaults.api_engine_timeout_s) == (MIB, 10.0)
    for name, value in (
        ("CX_API_MAX_BODY_BYTES", "1e9"),
        ("CX_API_MAX_BODY_BYTES", "12"),
        ("CX_API_ENGINE_TIMEOUT_S", "0"),
    ):
        with pytest.raises(ValueError, match=name):
            Settings.from_env({name: value})
    api = make_api(token_table("p-bounds"), max_body_bytes=2048)
    padded = {"actor_id": "officer", "reason": "x" * 3000}
    refused = await api.post("/exchanges/app-bounds/updates/cancel", json=padded, headers=auth(OFFICER))
    assert refused.status_code == 413
    assert "2048" in refused.json()["detail"]
    small = await api.post("/exchanges/app-bounds/updates/cancel", json={"actor_id": "o"}, headers=auth(OFFICER))
    assert small.status_code == 422, "within the limit, the body is read and checked"


async def test_an_engine_that_does_not_answer_gets_a_504_within_the_limit(
    make_api: MakeApi, dev_client: ExchangeClient, pg_pool: asyncpg.Pool
) -> None:
    """An exchange whose task queue has no worker: its status and an update are answered 504 within the engine
    timeout, saying the decision may still apply and to retry with the same key; a second request with that key
    while the first waits is 409; the 504 keeps nothing, so the key may be used again."""
    partnership = f"p-slow-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership), engine_timeout_s=ENGINE_TIMEOUT_S)
    app = application(visitor_partnership_id=partnership)
    handle = await dev_client.temporal.start_workflow(
        EXCHANGE_WORKFLOW_TYPE,
        app,
        id=exchange_workflow_id(app.application_id),
        task_queue=f"no-worker-{uuid.uuid4().hex[:8]}",
    )
    loop = asyncio.get_running_loop()
    try:
        began = loop.time()
        status = await api.get(f"/exchanges/{app.application_id}", headers=auth(OFFICER))
        assert status.status_code == 504, status.text
        assert loop.time() - began < ENGINE_TIMEOUT_S + SLACK_S, status.text
        assert f"within {ENGINE_TIMEOUT_S:g} s" in status.json()["detail"]

        path = f"/exchanges/{app.application_id}/updates/cancel"
        payload = {"actor_id": officer_of(partnership), "reason": "the host closed the facility"}
        headers = {**auth(OFFICER), "Idempotency-Key": "k-slow"}

        async def second() -> httpx.Response:
            await asyncio.sleep(ENGINE_TIMEOUT_S / 5)  # while the first one waits for the engine
            return await api.post(path, json=payload, headers=headers)

        began = loop.time()
        first, concurrent = await asyncio.gather(api.post(path, json=payload, headers=headers), second())
        assert first.status_code == 504, first.text
        assert loop.time() - began < ENGINE_TIMEOUT_S + SLACK_S, first.text
        assert fields(first) == ["Idempotency-Key"]
        assert "may still be applied" in first.json()["detail"]
        assert concurrent.status_code == 409, concurrent.text
        assert fields(concurrent) == ["Idempotency-Key"], concurrent.text
        assert concurrent.headers["retry-after"] == "1"
        kept = await pg_pool.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE principal = $1 AND key = 'k-slow'", officer_of(partnership)
        )
        assert kept == 0, "a timeout keeps no answer: the same request may be sent again"
        retried = await api.post(path, json=payload, headers=headers)
        assert retried.status_code == 504
        assert "idempotent-replayed" not in retried.headers
    finally:
        await handle.terminate("test finished: no worker ever polls its queue")


async def test_a_request_held_by_the_database_is_cut_at_its_deadline(make_api: MakeApi, pg_pool: asyncpg.Pool) -> None:
    """While the idempotency table is locked, a request with a key waits on Postgres; the request's deadline
    (three engine timeouts) answers it 504; once the lock is gone the same request goes through."""
    partnership = f"p-lock-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership), engine_timeout_s=ENGINE_TIMEOUT_S)
    path = "/exchanges/app-never-started-lock/updates/cancel"
    request: dict[str, Any] = {
        "json": {"actor_id": officer_of(partnership), "reason": "the host closed the facility"},
        "headers": {**auth(OFFICER), "Idempotency-Key": "k-lock"},
    }
    loop = asyncio.get_running_loop()
    async with pg_pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE")
        began = loop.time()
        held = await api.post(path, **request)
        elapsed = loop.time() - began
    assert held.status_code == 504, held.text
    assert held.json()["title"] == "Request timeout", held.text
    assert 3 * ENGINE_TIMEOUT_S <= elapsed < 3 * ENGINE_TIMEOUT_S + SLACK_S, elapsed
    after = await api.post(path, **request)
    assert after.status_code == 404
    assert json.loads(after.text)["errors"][0]["field"] == "application_id"
