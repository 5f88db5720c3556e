"""The REST API on the real stack: a dev-server worker, the test database, the app served in-process (ASGI)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import asyncpg
import httpx
import pytest
import pytest_asyncio

from clients.api import Principal, create_app
from clients.api.app import ENGINE_TIMEOUT_S, MAX_BODY_BYTES
from clients.client import ExchangeClient
from ledger.evidence_store import FileEvidenceStore
from tests.api.helpers import token_table
from tests.workflows.conftest import add_review_panel
from tests.workflows.conftest import dev_client as dev_client  # the fixture: a worker on the dev server


class MakeApi(Protocol):
    """Build the app over the session's stack with these tokens (and, for the bounds' tests, other limits)."""

    def __call__(
        self, tokens: dict[str, Principal], *, engine_timeout_s: float = ..., max_body_bytes: int = ...
    ) -> httpx.AsyncClient: ...


@pytest.fixture(scope="session")
def evidence_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evidence")


@pytest_asyncio.fixture(loop_scope="session")
async def make_api(dev_client: ExchangeClient, pg_pool: asyncpg.Pool, evidence_dir: Path) -> AsyncIterator[MakeApi]:
    """A factory: the app over the session's stack with the given token table, as an httpx client."""
    async with contextlib.AsyncExitStack() as stack:

        def make(
            tokens: dict[str, Principal],
            *,
            engine_timeout_s: float = ENGINE_TIMEOUT_S,
            max_body_bytes: int = MAX_BODY_BYTES,
        ) -> httpx.AsyncClient:
            app = create_app(
                dev_client,
                pg_pool,
                tokens,
                evidence_store=FileEvidenceStore(evidence_dir),
                engine_timeout_s=engine_timeout_s,
                max_body_bytes=max_body_bytes,
            )
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
            stack.push_async_callback(client.aclose)
            return client

        yield make


@pytest.fixture(scope="session")
def partnership() -> str:
    """The session's partnership for tests that need reviewers but no budget (review panel added by `api`)."""
    return f"p-api-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(loop_scope="session")
async def api(make_api: MakeApi, pg_pool: asyncpg.Pool, partnership: str) -> httpx.AsyncClient:
    """The app with the standard token table; the partnership's review panel exists."""
    await add_review_panel(pg_pool, partnership)
    return make_api(token_table(partnership))
