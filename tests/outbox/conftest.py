"""Fixtures of the outbox tests: a webhook receiver, and a fresh database per test (a dispatcher delivers every
due row it can see, so tests must not share one)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest
import pytest_asyncio

from tests.outbox.receivers import WebhookReceiver, serving_webhooks


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with serving_webhooks() as state:
        yield state


@pytest_asyncio.fixture
async def pool(make_database: Callable[[], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(await make_database(), min_size=1, max_size=10)
    try:
        yield created
    finally:
        await created.close()
