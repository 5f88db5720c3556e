"""One exchange's trace reaches finance: client -> workflow -> activity -> Postgres -> outbox -> webhook (issue 15, 6).

The exchange is started through a traced client and driven to its payment order on the time-skipping server
by a worker built on that client; its `post_payment` activity writes the order's outbox row with the trace
context of the activity's span (migration 0012). A dispatcher with the same in-memory tracing then delivers
the row to a local receiver: the webhook's `traceparent` and every span on the way carry the trace id of the
StartWorkflow span. A database of its own, so the dispatcher delivers this exchange's row and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.stages import Stage
from tests.factories import application
from tests.outbox.receivers import dispatcher_config, serving_webhooks
from tests.workflows.conftest import add_review_panel, wait_for_stage
from tests.workflows.test_edges import drive_to_payment
from workers.dispatcher import Dispatcher
from workers.main import build_worker
from workers.tracing import Tracing, traced_client


@pytest_asyncio.fixture
async def own_pool(make_database: Callable[[], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(await make_database(), min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


def trace_ids(exporter: InMemorySpanExporter, prefix: str) -> set[str]:
    return {f"{s.context.trace_id:032x}" for s in exporter.get_finished_spans() if s.name.startswith(prefix)}


async def test_the_payment_orders_webhook_carries_the_exchanges_trace(
    tracing: tuple[Tracing, InMemorySpanExporter], time_skipping_env: WorkflowEnvironment, own_pool: asyncpg.Pool
) -> None:
    traced, exporter = tracing
    partnership = f"p-{uuid.uuid4().hex[:10]}"
    await LedgerStore(own_pool).allocate(
        idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=1_000_000
    )
    await add_review_panel(own_pool, partnership)
    client = traced_client(time_skipping_env.client, traced)
    task_queue = f"cx-traced-{uuid.uuid4().hex[:8]}"
    exchanges = ExchangeClient(client, task_queue)
    app = application(visitor_partnership_id=partnership)
    with serving_webhooks() as finance:
        async with build_worker(client, own_pool, task_queue, finance_webhook_url=finance.url):
            await exchanges.start_exchange(app)
            await wait_for_stage(exchanges, app.application_id, Stage.REVIEW)
            await drive_to_payment(exchanges, time_skipping_env, own_pool, app.application_id)
        [started] = trace_ids(exporter, "StartWorkflow:Exchange")
        assert started in trace_ids(exporter, "RunActivity:post_payment"), "the payment activity is in the trace"

        dispatcher = Dispatcher(own_pool, dispatcher_config(), tracer=traced.provider.get_tracer("workers.dispatcher"))
        try:
            assert await dispatcher.run_once() == 1, "exactly this exchange's payment order was due"
        finally:
            await dispatcher.close()

    [(headers, _)] = finance.received
    assert headers["traceparent"].split("-")[1] == started, "the webhook names the exchange's trace"
    assert trace_ids(exporter, "outbox deliver") == {started}
    # The activity's Postgres statements are spans of the same trace (asyncpg instrumentation).
    postgres = {f"{s.context.trace_id:032x}" for s in exporter.get_finished_spans() if s.attributes
                and s.attributes.get("db.system") == "postgresql"}  # fmt: skip
    assert started in postgres
