"""The dispatcher against real receivers: a local HTTP server for webhooks and a local aiosmtpd server for e-mail.

Each test gets its own fresh database, because a dispatcher delivers every due row it can see.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import standardwebhooks
from aiosmtpd.controller import Controller

from activities.outbox import enqueue, payment_order_dedup_key
from tests.outbox.receivers import (
    SECRET,
    RecordingHandler,
    WebhookReceiver,
    dispatcher_config,
    enqueue_webhook,
    make_dispatcher,
)
from tests.waiting import eventually
from workers.devstack import free_port
from workers.dispatcher import Dispatcher, DispatcherConfig


class CountingDispatcher(Dispatcher):
    """A dispatcher that counts what it claimed, to show that both of two dispatchers took part."""

    claimed = 0

    async def run_once(self) -> int:
        claimed = await super().run_once()
        self.claimed += claimed
        return claimed


async def test_webhook_is_delivered_with_a_signature_the_receiver_can_verify(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    """A payment order is POSTed once as JSON signed per Standard Webhooks: webhook-id is the dedup key and
    webhook-signature is v1,base64(HMAC-SHA256 of "<id>.<timestamp>.<body>") keyed with the raw secret's bytes."""
    outbox_id = await enqueue_webhook(pool, receiver.url, "app-1")
    dispatcher = make_dispatcher(pool)
    try:
        assert await dispatcher.run_once() == 1
        assert await dispatcher.run_once() == 0
    finally:
        await dispatcher.close()

    [(headers, body)] = receiver.received
    # Verified independently of the dispatcher's helpers, as a receiver would.
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET.encode(), signed, hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(headers["webhook-signature"], f"v1,{expected}")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-id"] == "payment-order:app-1"
    assert headers["x-cx-dedup-key"] == "payment-order:app-1"
    assert "traceparent" not in headers  # nothing enqueued it inside a trace
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert document["dedup_key"] == "payment-order:app-1"
    assert document["topic"] == "payment_order"
    assert document["payload"] == {"application_id": "app-1", "amount_cents": 45_000}
    row = await pool.fetchrow("SELECT attempts, delivered_at, dead_at FROM outbox WHERE id = $1", outbox_id)
    assert row is not None
    assert row["attempts"] == 1
    assert row["delivered_at"] is not None
    assert row["dead_at"] is None


async def test_failing_endpoint_is_retried_with_backoff_then_delivered_once(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    """An endpoint answering 500 twice is retried after growing delays and the row is delivered exactly once.

    The receiver sees three requests (two refused, one accepted); it would see a duplicate of an accepted
    one only if a dispatcher crashed between the delivery and recording it, hence the dedup key.
    """
    receiver.statuses = [500, 500]
    outbox_id = await enqueue_webhook(pool, receiver.url, "app-2")
    dispatcher = make_dispatcher(pool, base_backoff_s=0.3)
    until_due = "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM outbox WHERE id = $1"
    try:
        assert await dispatcher.run_once() == 1  # 500: retry in 0.3 s
        first_delay_s = await pool.fetchval(until_due, outbox_id)
        assert 0 < first_delay_s <= 0.3
        assert await dispatcher.run_once() == 0  # not due yet: the backoff holds
        await asyncio.sleep(first_delay_s + 0.05)
        assert await dispatcher.run_once() == 1  # 500 again: retry in 0.6 s
        second_delay_s = await pool.fetchval(until_due, outbox_id)
        assert 0.3 < second_delay_s <= 0.6
        await asyncio.sleep(second_delay_s + 0.05)
        assert await dispatcher.run_once() == 1  # recovered: 200
        assert await dispatcher.run_once() == 0
    finally:
        await dispatcher.close()

    assert receiver.dedup_keys() == ["payment-order:app-2"] * 3
    row = await pool.fetchrow("SELECT attempts, delivered_at, dead_at, last_error FROM outbox WHERE id = $1", outbox_id)
    assert row is not None
    assert row["attempts"] == 3
    assert row["delivered_at"] is not None
    assert row["dead_at"] is None
    assert "HTTP 500" in row["last_error"]


async def test_message_is_parked_as_dead_after_max_attempts(pool: asyncpg.Pool, receiver: WebhookReceiver) -> None:
    """An endpoint that always answers 503 gets max_attempts outbox attempts of retry_attempts tries each (the
    short in-delivery retries), then the row is dead with its last error."""
    receiver.statuses = [503] * 10
    outbox_id = await enqueue_webhook(pool, receiver.url, "app-3")
    dispatcher = make_dispatcher(pool, max_attempts=3, retry_attempts=3)
    try:
        for _ in range(3):
            assert await dispatcher.run_once() == 1
        assert await dispatcher.run_once() == 0
    finally:
        await dispatcher.close()

    assert len(receiver.received) == 3 * 3
    row = await pool.fetchrow("SELECT attempts, delivered_at, dead_at, last_error FROM outbox WHERE id = $1", outbox_id)
    assert row is not None
    assert row["attempts"] == 3
    assert row["delivered_at"] is None
    assert row["dead_at"] is not None
    assert row["last_error"].startswith("DeliveryFailed: HTTP 503")


async def test_slow_endpoint_takes_the_timeout_branch(pool: asyncpg.Pool, receiver: WebhookReceiver) -> None:
    """An endpoint slower than timeout_s counts as a failed attempt, recorded as a timeout, and is retried later."""
    receiver.delay_s = 1.5
    outbox_id = await enqueue_webhook(pool, receiver.url, "app-4")
    dispatcher = make_dispatcher(pool, timeout_s=0.3, base_backoff_s=60.0)
    started = time.monotonic()
    try:
        assert await dispatcher.run_once() == 1
        elapsed_s = time.monotonic() - started
    finally:
        await dispatcher.close()
    assert elapsed_s < 1.2
    row = await pool.fetchrow(
        "SELECT attempts, delivered_at, last_error, next_attempt_at > now() + interval '50 seconds' AS later "
        "FROM outbox WHERE id = $1",
        outbox_id,
    )
    assert row is not None
    assert row["attempts"] == 1
    assert row["delivered_at"] is None
    assert row["later"]
    assert "timed out" in row["last_error"] or "Timeout" in row["last_error"]


async def test_row_abandoned_by_a_lost_dispatcher_on_its_last_attempt_is_parked(pool: asyncpg.Pool) -> None:
    """A row whose last attempt never recorded an outcome (its dispatcher died) is parked once its lease expires."""
    outbox_id = await enqueue_webhook(pool, "http://127.0.0.1:9/unused", "app-5")
    # As a claim on the last attempt leaves it, with the lease already expired.
    await pool.execute(
        "UPDATE outbox SET attempts = 3, next_attempt_at = now() - interval '1 second' WHERE id = $1", outbox_id
    )
    dispatcher = make_dispatcher(pool, max_attempts=3)
    try:
        assert await dispatcher.run_once() == 0
    finally:
        await dispatcher.close()
    row = await pool.fetchrow("SELECT dead_at, last_error FROM outbox WHERE id = $1", outbox_id)
    assert row is not None
    assert row["dead_at"] is not None
    assert "dispatcher lost" in row["last_error"]


async def test_email_is_delivered_over_smtp_with_a_message_id_from_the_dedup_key(pool: asyncpg.Pool) -> None:
    """A notification e-mail reaches a local SMTP server with a Message-ID derived from its dedup key."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    key = f"notification:report-reminder:{uuid.uuid4().hex[:8]}"
    try:
        async with pool.acquire() as conn, conn.transaction():
            outbox_id = await enqueue(
                conn,
                dedup_key=key,
                topic="notification",
                channel="email",
                destination="vop@example.org",
                payload={"subject": "Report due in 7 days", "text": "Please submit the closing report."},
            )
        dispatcher = make_dispatcher(
            pool, smtp_host="127.0.0.1", smtp_port=port, smtp_sender="grants@clusterxchange.test", smtp_tls="none"
        )
        try:
            assert await dispatcher.run_once() == 1
        finally:
            await dispatcher.close()
    finally:
        controller.stop()

    [message] = handler.messages
    expected_id = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.outbox@clusterxchange.test>"
    assert message["Message-ID"] == expected_id
    assert message["X-CX-Dedup-Key"] == key
    assert message["To"] == "vop@example.org"
    assert message["From"] == "grants@clusterxchange.test"
    assert message["Subject"] == "Report due in 7 days"
    assert message.get_content_type() == "text/plain"
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.decode().strip() == "Please submit the closing report."
    assert await pool.fetchval("SELECT delivered_at IS NOT NULL FROM outbox WHERE id = $1", outbox_id)


async def test_two_dispatchers_on_the_same_rows_deliver_each_message_once(
    make_database: Callable[[], Awaitable[str]], receiver: WebhookReceiver
) -> None:
    """Two dispatchers (own pools, as two processes) polling the same outbox deliver each message exactly once."""
    receiver.delay_s = 0.01  # long enough for the two dispatchers' claims to overlap
    dsn = await make_database()
    pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=6) for _ in range(2)]
    count = 40
    try:
        for n in range(count):
            await enqueue_webhook(pools[0], receiver.url, f"app-{n}")
        dispatchers = [CountingDispatcher(p, dispatcher_config(batch_size=5, poll_interval_s=0.05)) for p in pools]
        stop = asyncio.Event()
        runs = [asyncio.create_task(d.run(stop)) for d in dispatchers]
        try:
            # Polling the database: the dispatchers signal nothing a test could wait on.
            await eventually(
                lambda: pools[0].fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NULL"),
                lambda undelivered: undelivered == 0,
                "every outbox row delivered by the two dispatchers",
                within_s=20,
            )
        finally:
            stop.set()
            async with asyncio.timeout(5):
                await asyncio.gather(*runs)
            for d in dispatchers:
                await d.close()
        attempts = await pools[0].fetch("SELECT DISTINCT attempts FROM outbox")
    finally:
        for p in pools:
            await p.close()

    keys = receiver.dedup_keys()
    assert sorted(keys) == sorted(payment_order_dedup_key(f"app-{n}") for n in range(count))
    assert [r["attempts"] for r in attempts] == [1]
    assert all(d.claimed > 0 for d in dispatchers)
    assert sum(d.claimed for d in dispatchers) == count


def test_config_from_env_reads_the_documented_variables() -> None:
    """DispatcherConfig.from_env reads CX_WEBHOOK_SECRET and CX_SMTP_*, and refuses to run without a secret."""
    config = DispatcherConfig.from_env(
        {
            "CX_WEBHOOK_SECRET": "s3cret",
            "CX_SMTP_HOST": "smtp.internal",
            "CX_SMTP_PORT": "2525",
            "CX_SMTP_SENDER": "grants@example.org",
            "CX_SMTP_TLS": "tls",
            "CX_SMTP_USERNAME": "cx",
            "CX_SMTP_PASSWORD": "mail-pass",
            "CX_SMTP_CA_FILE": "/etc/cx/relay-ca.pem",
        }
    )
    assert (config.webhook_secret, config.smtp_host, config.smtp_port, config.smtp_sender) == (
        "s3cret",
        "smtp.internal",
        2525,
        "grants@example.org",
    )
    assert (config.smtp_tls, config.smtp_username, str(config.smtp_ca_file)) == ("tls", "cx", "/etc/cx/relay-ca.pem")
    assert config.smtp_password is not None
    assert config.smtp_password.get_secret_value() == "mail-pass"
    assert "mail-pass" not in repr(config)
    assert "s3cret" not in repr(config)
    assert DispatcherConfig.from_env({"CX_WEBHOOK_SECRET": "s"}).smtp_tls == "starttls"  # required by default
    assert config.backoff_s(1) == config.base_backoff_s
    assert config.backoff_s(100) == config.max_backoff_s
    assert config.lease_s > config.timeout_s
    with pytest.raises(ValueError, match="CX_WEBHOOK_SECRET"):
        DispatcherConfig.from_env({})
    with pytest.raises(ValueError, match="CX_SMTP_PORT"):
        DispatcherConfig.from_env({"CX_WEBHOOK_SECRET": "s", "CX_SMTP_PORT": "smtp"})
    with pytest.raises(ValueError, match="CX_SMTP_TLS"):
        DispatcherConfig.from_env({"CX_WEBHOOK_SECRET": "s", "CX_SMTP_TLS": "ssl"})
    with pytest.raises(ValueError, match="in clear"):
        DispatcherConfig.from_env(
            {"CX_WEBHOOK_SECRET": "s", "CX_SMTP_TLS": "none", "CX_SMTP_USERNAME": "cx", "CX_SMTP_PASSWORD": "p"}
        )
    with pytest.raises(ValueError, match="set both"):
        DispatcherConfig.from_env({"CX_WEBHOOK_SECRET": "s", "CX_SMTP_USERNAME": "cx"})
    with pytest.raises(ValueError, match="base64"):
        DispatcherConfig.from_env({"CX_WEBHOOK_SECRET": "whsec_not*base64"})


async def test_a_standard_webhooks_library_verifies_what_the_dispatcher_sends(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    """The reference Standard Webhooks library, as finance might use it, accepts a real delivery signed with a raw
    CX_WEBHOOK_SECRET (given to it as whsec_ + base64) and with a whsec_ secret, and refuses a tampered body."""
    whsec = "whsec_" + base64.b64encode(b"a-key-of-32-bytes-for-the-tests!").decode()
    for secret, application_id in ((SECRET, "app-ref-raw"), (whsec, "app-ref-whsec")):
        await enqueue_webhook(pool, receiver.url, application_id)
        dispatcher = make_dispatcher(pool, webhook_secret=secret)
        try:
            assert await dispatcher.run_once() == 1
        finally:
            await dispatcher.close()
        headers, body = receiver.received[-1]
        as_finance_configures_it = (
            secret if secret.startswith("whsec_") else "whsec_" + base64.b64encode(secret.encode()).decode()
        )
        verified = standardwebhooks.Webhook(as_finance_configures_it).verify(body, headers)
        assert verified["payload"]["application_id"] == application_id
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook(as_finance_configures_it).verify(body.replace(b"45000", b"95000"), headers)
