"""enqueue: one row per dedup key, written only if the caller's transaction commits."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest
from pydantic import ValidationError

from activities.outbox import OutboxConflict, enqueue, payment_order_dedup_key


def _key() -> str:
    return payment_order_dedup_key(f"app-{uuid.uuid4().hex[:10]}")


async def test_enqueue_twice_with_one_dedup_key_writes_one_row(pg_pool: asyncpg.Pool) -> None:
    """Enqueueing the same dedup key twice (a retried activity) returns the same id and leaves one row."""
    key = _key()
    payload = {"application_id": key, "amount_cents": 12_345}
    async with pg_pool.acquire() as conn:
        async with conn.transaction():
            first = await enqueue(
                conn,
                dedup_key=key,
                topic="payment_order",
                channel="webhook",
                destination="https://finance.example/hook",
                payload=payload,
            )
        async with conn.transaction():
            second = await enqueue(
                conn,
                dedup_key=key,
                topic="payment_order",
                channel="webhook",
                destination="https://finance.example/hook",
                payload={**payload, "amount_cents": 1},
            )
        rows = await conn.fetch("SELECT id, payload, attempts, delivered_at FROM outbox WHERE dedup_key = $1", key)
    assert first == second
    assert [r["id"] for r in rows] == [first]
    # The first payload wins; the row is pending.
    assert json.loads(rows[0]["payload"]) == payload
    assert rows[0]["attempts"] == 0
    assert rows[0]["delivered_at"] is None


async def test_rolled_back_transaction_enqueues_nothing_and_its_retry_enqueues_once(pg_pool: asyncpg.Pool) -> None:
    """A message enqueued in a transaction that rolls back does not exist; the retried transaction writes it once."""
    key = _key()

    class Crash(Exception):
        pass

    async with pg_pool.acquire() as conn:

        async def enqueue_then_crash() -> None:
            async with conn.transaction():
                await enqueue(
                    conn, dedup_key=key, topic="notification", channel="email", destination="vo@example.org", payload={}
                )
                raise Crash

        with pytest.raises(Crash):
            await enqueue_then_crash()
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE dedup_key = $1", key) == 0
        async with conn.transaction():
            await enqueue(
                conn, dedup_key=key, topic="notification", channel="email", destination="vo@example.org", payload={}
            )
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE dedup_key = $1", key) == 1


async def test_dedup_key_reused_for_another_destination_is_refused(pg_pool: asyncpg.Pool) -> None:
    """A dedup key that already names a message to another destination raises instead of dropping the new one."""
    key = _key()
    async with pg_pool.acquire() as conn:
        await enqueue(
            conn, dedup_key=key, topic="notification", channel="email", destination="a@example.org", payload={}
        )
        with pytest.raises(OutboxConflict, match="already names"):
            await enqueue(
                conn, dedup_key=key, topic="notification", channel="email", destination="b@example.org", payload={}
            )


@pytest.mark.parametrize(
    ("channel", "destination"),
    [
        ("webhook", "ftp://finance.example/hook"),
        ("webhook", "not a url"),
        ("email", "no-at-sign.example.org"),
        ("email", "vo@example.org\r\nBcc: all@example.org"),
    ],
)
async def test_invalid_destination_is_refused_before_the_database(
    pg_pool: asyncpg.Pool, channel: str, destination: str
) -> None:
    """A destination that is not an http(s) URL or a single-line address is refused and nothing is written."""
    key = _key()
    async with pg_pool.acquire() as conn:
        with pytest.raises(ValidationError):
            await enqueue(
                conn,
                dedup_key=key,
                topic="notification",
                channel=channel,  # type: ignore[arg-type]
                destination=destination,
                payload={},
            )
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE dedup_key = $1", key) == 0
