"""The dispatcher's Prometheus metrics (issue 15's agreed names), read over HTTP from /metrics after real
deliveries: counters by channel and outcome, the duration histogram, and the outbox gauges read from Postgres.
`cx dispatcher` itself serves them on CX_METRICS_ADDRESS (its liveness endpoint)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from activities.outbox import enqueue
from tests.outbox.receivers import SECRET, WebhookReceiver, dispatcher_config, enqueue_webhook
from tests.waiting import eventually, within
from workers.devstack import free_port
from workers.dispatcher import Dispatcher

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a /metrics page, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    assert response.status_code == 200
    return parse(response.text)


async def test_metrics_count_real_deliveries_and_read_the_outbox(pool: asyncpg.Pool, receiver: WebhookReceiver) -> None:
    """Four real attempts (webhook delivered, refused for good, failing; e-mail to a closed port) show on /metrics
    as counters, histogram counts, backlog, oldest age and dead letters per channel."""
    receiver.statuses = [200, 404, 500]  # in the order the dispatcher claims them: by id
    for application_id in ("m-ok", "m-refused", "m-failing"):
        await enqueue_webhook(pool, receiver.url, application_id)
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(
            conn,
            dedup_key=f"notification:m:{uuid.uuid4().hex[:8]}",
            topic="notification",
            channel="email",
            destination="ops@example.org",
            payload={"subject": "s", "text": "t"},
        )
    config = dispatcher_config(
        base_backoff_s=600.0, batch_size=1, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none"
    )
    dispatcher = Dispatcher(pool, config)
    server = dispatcher.metrics.serve(f"127.0.0.1:{free_port()}")
    url = f"http://127.0.0.1:{server.port}/metrics"
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        samples = await eventually(
            lambda: scrape(url),
            # The gauges are read at most once per poll interval: wait for a read after the last attempt.
            lambda s: (
                value(s, "cx_dispatcher_deliveries_total", channel="email", outcome="failed") == 1
                and value(s, "cx_outbox_dead", channel="webhook") == 1
                and value(s, "cx_outbox_backlog", channel="webhook") == 1
            ),
            "every message attempted once and the gauges read after it",
            within_s=20,
        )
    finally:
        stop.set()
        await within(running, "the dispatcher's loop to stop", within_s=10)
        server.close()
        await dispatcher.close()

    deliveries = "cx_dispatcher_deliveries_total"
    assert value(samples, deliveries, channel="webhook", outcome="delivered") == 1
    assert value(samples, deliveries, channel="webhook", outcome="dead") == 1
    assert value(samples, deliveries, channel="webhook", outcome="failed") == 1
    assert value(samples, deliveries, channel="email", outcome="delivered") == 0
    assert value(samples, "cx_dispatcher_delivery_seconds_count", channel="webhook") == 3
    assert value(samples, "cx_dispatcher_delivery_seconds_count", channel="email") == 1
    assert value(samples, "cx_outbox_backlog", channel="webhook") == 1  # the failing one waits its backoff
    assert value(samples, "cx_outbox_dead", channel="webhook") == 1
    assert value(samples, "cx_outbox_dead", channel="email") == 0
    assert value(samples, "cx_outbox_oldest_age_seconds", channel="webhook") > 0
    # And the gauges follow the table: once the backlog is delivered (here: marked so), the next loop says 0.
    await pool.execute("UPDATE outbox SET delivered_at = now() WHERE delivered_at IS NULL AND dead_at IS NULL")
    await dispatcher.metrics.refresh(pool)
    after = parse(generate_latest(dispatcher.metrics.registry).decode())
    assert value(after, "cx_outbox_backlog", channel="webhook") == 0
    assert value(after, "cx_outbox_oldest_age_seconds", channel="email") == 0


async def test_cx_dispatcher_serves_metrics_on_cx_metrics_address(make_database: Callable[[], Awaitable[str]]) -> None:
    """`cx dispatcher` with CX_METRICS_ADDRESS answers /metrics with the outbox families (its liveness) and stops
    on SIGTERM with exit code 0."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "TEMPORAL_ADDRESS"} | {
        "DATABASE_URL": await make_database(),
        "CX_WEBHOOK_SECRET": SECRET,
        "CX_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "CX_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "dispatcher", cwd=ROOT, env=environment,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        samples = await eventually(
            lambda: scrape(f"http://127.0.0.1:{port}/metrics"),
            lambda s: ("cx_outbox_backlog", (("channel", "webhook"),)) in s,
            "cx dispatcher's /metrics to answer",
            within_s=30,
            transient=(httpx.ConnectError,),  # until the process listens
        )
        assert value(samples, "cx_outbox_dead", channel="email") == 0
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await within(process.wait(), "cx dispatcher to stop on SIGTERM", within_s=20)
    assert process.stderr is not None
    assert code == 0, (await process.stderr.read()).decode()[-2000:]
