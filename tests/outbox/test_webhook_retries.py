"""The two layers of webhook retry (ADR 0019) against a real local endpoint: stamina's short retries within one
attempt for transient trouble, the outbox's long backoff between attempts, and a permanent refusal parked at once."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from tests.outbox.receivers import WebhookReceiver, enqueue_webhook, make_dispatcher
from workers.devstack import free_port
from workers.webhook_delivery import retry_after_s

ROW_SQL = """SELECT attempts, delivered_at IS NOT NULL AS delivered, dead_at IS NOT NULL AS dead, last_error,
                    extract(epoch FROM next_attempt_at - now())::float8 AS due_in_s
               FROM outbox WHERE id = $1"""


async def _one_attempt(pool: asyncpg.Pool, url: str, **overrides: float) -> asyncpg.Record:
    outbox_id = await enqueue_webhook(pool, url, "app-r")
    dispatcher = make_dispatcher(pool, base_backoff_s=60.0, **overrides)
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()
    row = await pool.fetchrow(ROW_SQL, outbox_id)
    assert row is not None
    return row


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_proxy_error_is_retried_within_the_attempt_with_the_same_webhook_id(
    pool: asyncpg.Pool, receiver: WebhookReceiver, status: int
) -> None:
    """A 502/503/504 followed by 200 is delivered in one outbox attempt; both requests carry the same webhook-id."""
    receiver.statuses = [status]
    row = await _one_attempt(pool, receiver.url)
    assert (row["attempts"], row["delivered"], row["dead"]) == (1, True, False)
    assert receiver.dedup_keys() == ["payment-order:app-r"] * 2


async def test_429_with_a_short_retry_after_is_retried_within_the_attempt(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    """A 429 asking to wait 1 s (within the attempt's budget) is honoured, then the retry is delivered."""
    receiver.statuses = [(429, {"Retry-After": "1"})]
    row = await _one_attempt(pool, receiver.url)
    assert (row["attempts"], row["delivered"]) == (1, True)
    assert len(receiver.received) == 2


async def test_429_with_a_long_retry_after_moves_the_next_outbox_attempt(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    """A 429 asking for 10 minutes is not waited for in the attempt: the outbox's next attempt comes no sooner."""
    receiver.statuses = [(429, {"Retry-After": "600"})]
    row = await _one_attempt(pool, receiver.url)
    assert (row["attempts"], row["delivered"], row["dead"]) == (1, False, False)
    assert len(receiver.received) == 1
    assert 590 < row["due_in_s"] <= 600  # the backoff alone would be 60 s
    assert "HTTP 429" in row["last_error"]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_a_permanent_refusal_is_dead_at_once(pool: asyncpg.Pool, receiver: WebhookReceiver, status: int) -> None:
    """A 4xx other than 408/429 means the receiver will never take this message: one request, parked as dead."""
    receiver.statuses = [status] * 5
    row = await _one_attempt(pool, receiver.url)
    assert (row["attempts"], row["delivered"], row["dead"]) == (1, False, True)
    assert len(receiver.received) == 1
    assert row["last_error"].startswith(f"PermanentRefusal: HTTP {status}")


@pytest.mark.parametrize("answer", [408, 500, (307, {"Location": "http://127.0.0.1:9/elsewhere"})])
async def test_other_failures_wait_for_the_outbox_backoff(
    pool: asyncpg.Pool, receiver: WebhookReceiver, answer: int | tuple[int, dict[str, str]]
) -> None:
    """408, 500 and a redirect (never followed) fail the attempt without in-delivery retries; the row waits."""
    receiver.statuses = [answer]
    row = await _one_attempt(pool, receiver.url)
    assert (row["attempts"], row["delivered"], row["dead"]) == (1, False, False)
    assert len(receiver.received) == 1
    assert 55 < row["due_in_s"] <= 60
    assert row["last_error"].startswith("DeliveryFailed: HTTP")


async def test_a_refused_connection_is_recorded_and_retried_later(pool: asyncpg.Pool) -> None:
    """Nothing listening: the in-delivery tries fail to connect, the attempt records ConnectError, the row waits."""
    row = await _one_attempt(pool, f"http://127.0.0.1:{free_port()}/hooks", retry_attempts=3)
    assert (row["attempts"], row["delivered"], row["dead"]) == (1, False, False)
    assert row["last_error"].startswith("ConnectError")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After in delta-seconds or as an HTTP date (RFC 9110); absent or unreadable means none."""
    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120.0
    assert retry_after_s("Wed, 02 Dec 2026 12:05:00 GMT", now) == 300.0
    assert retry_after_s("Wed, 02 Dec 2026 11:00:00 GMT", now) == 0.0  # a date past is "now"
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None
