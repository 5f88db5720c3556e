"""The finance stand-in of `make run` (workers/finance_stub.py) as finance must behave, fed by the real dispatcher:
Standard Webhooks signature verified, timestamps outside the 5-minute replay window refused, redeliveries of one
webhook-id acknowledged and recorded once; a refusal (401) parks the row as dead at once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest_asyncio

from tests.outbox.receivers import SECRET, enqueue_webhook, make_dispatcher
from workers.finance_stub import FinanceStub

STATE_SQL = (
    "SELECT attempts, delivered_at IS NOT NULL AS delivered, dead_at IS NOT NULL AS dead, last_error FROM outbox"
)


@pytest_asyncio.fixture
async def stub_factory() -> AsyncIterator[Callable[..., FinanceStub]]:
    started: list[FinanceStub] = []

    def make(secret: str = SECRET, clock: Callable[[], float] = time.time) -> FinanceStub:
        stub = FinanceStub(secret, clock=clock)
        started.append(stub)
        return stub

    yield make
    for stub in started:
        await stub.close()


async def _deliver_once(pool: asyncpg.Pool) -> None:
    dispatcher = make_dispatcher(pool)
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()


async def test_a_redelivered_order_is_acknowledged_and_recorded_once(
    pool: asyncpg.Pool, stub_factory: Callable[..., FinanceStub]
) -> None:
    """The same message delivered twice (a dispatcher that could not record the first 200) counts once at finance."""
    stub = stub_factory()
    await stub.start()
    await enqueue_webhook(pool, stub.url, "app-f")
    await _deliver_once(pool)
    # As after a crash between the receiver's 200 and the UPDATE: the row is due again.
    await pool.execute("UPDATE outbox SET delivered_at = NULL, next_attempt_at = now()")
    await _deliver_once(pool)
    assert list(stub.received) == ["app-f"]
    assert stub.seen_webhook_ids == {"payment-order:app-f"}
    assert stub.duplicates == 1
    assert stub.refused == []


async def test_a_wrong_secret_is_refused_and_the_row_is_dead_at_once(
    pool: asyncpg.Pool, stub_factory: Callable[..., FinanceStub]
) -> None:
    """Finance holding another key answers 401: a permanent refusal, parked after one attempt for ops to see."""
    stub = stub_factory(secret="whsec_" + "c29tZS1vdGhlci1rZXk=")
    await stub.start()
    await enqueue_webhook(pool, stub.url, "app-g")
    await _deliver_once(pool)
    assert stub.received == {}
    assert stub.refused == ["no webhook-signature matches the body"]
    row = await pool.fetchrow(STATE_SQL)
    assert row is not None
    assert (row["attempts"], row["delivered"], row["dead"]) == (1, False, True)
    assert row["last_error"].startswith("PermanentRefusal: HTTP 401")


async def test_a_timestamp_outside_the_replay_window_is_refused(
    pool: asyncpg.Pool, stub_factory: Callable[..., FinanceStub]
) -> None:
    """A receiver whose clock says the webhook was signed more than 5 minutes ago refuses it as a possible replay."""
    stub = stub_factory(clock=lambda: time.time() + 301)
    await stub.start()
    await enqueue_webhook(pool, stub.url, "app-h")
    await _deliver_once(pool)
    assert stub.received == {}
    [reason] = stub.refused
    assert "replay window" in reason
