"""Workers for workflow tests: the real activities, a real Postgres, real Temporal servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.exchange import ExchangeStatus
from schemas.stages import Stage
from workers.main import build_worker


@pytest_asyncio.fixture
async def ts_client(time_skipping_env: WorkflowEnvironment, pg_pool: asyncpg.Pool) -> AsyncIterator[ExchangeClient]:
    """An ExchangeClient on the time-skipping server, with a worker running the real activities."""
    task_queue = f"cx-test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(time_skipping_env.client, pg_pool, task_queue)
    async with worker:
        yield ExchangeClient(time_skipping_env.client, task_queue)


@pytest_asyncio.fixture(scope="session")
async def dev_client(dev_server_env: WorkflowEnvironment, pg_pool: asyncpg.Pool) -> AsyncIterator[ExchangeClient]:
    """An ExchangeClient on the dev server, with a worker running the real activities."""
    task_queue = f"cx-test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(dev_server_env.client, pg_pool, task_queue)
    async with worker:
        yield ExchangeClient(dev_server_env.client, task_queue)


@pytest_asyncio.fixture(scope="session")
async def ledger_store(pg_pool: asyncpg.Pool) -> LedgerStore:
    return LedgerStore(pg_pool)


@pytest_asyncio.fixture
async def funded_partnership(ledger_store: LedgerStore) -> Callable[[int], Awaitable[str]]:
    """Create a partnership budget of the given size (cents) and return its id."""

    async def fund(amount_cents: int) -> str:
        partnership_id = f"p-{uuid.uuid4().hex[:10]}"
        await ledger_store.allocate(
            idempotency_key=f"{partnership_id}:allocate:1", partnership_id=partnership_id, amount_cents=amount_cents
        )
        return partnership_id

    return fund


async def wait_for_stage(
    client: ExchangeClient, application_id: str, stage: Stage, within: timedelta = timedelta(seconds=30)
) -> ExchangeStatus:
    """Poll the status query (real time) until the exchange reaches `stage`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    status: ExchangeStatus | None = None
    while loop.time() < deadline:
        try:
            status = await client.status(application_id)
        except Exception:
            status = None
        if status is not None and status.stage == stage:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{application_id} did not reach {stage}; last status: {status}")
