"""Fault run: a worker killed between posting the hold and finishing the activity still yields one payment order."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import asyncpg
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.stages import Stage
from tests.factories import application
from tests.workflows.conftest import (
    add_review_panel,
    agree,
    approve,
    until,
    uploaded_evidence,
    validate,
    wait_for_stage,
)
from workers.main import build_worker

ROOT = Path(__file__).resolve().parents[2]


def _recent_week() -> tuple[date, date]:
    """Monday to Friday, two weeks ago: the stay is over, so its timers fire at once on the real clock."""
    monday = date.today() - timedelta(days=14)
    monday -= timedelta(days=monday.weekday())
    return monday, monday + timedelta(days=4)


async def test_a_worker_killed_after_the_payment_commit_produces_exactly_one_payment_order(
    dev_server_env: WorkflowEnvironment, database_url: str, pg_pool: asyncpg.Pool
) -> None:
    """The crashing worker commits post + pay-out + order + outbox, then dies; the retry on a healthy worker
    books nothing new, and the exchange is PAID with one order, one outbox message, one post, one pay-out."""
    task_queue = f"cx-fault-{uuid.uuid4().hex[:8]}"
    partnership = f"p-{uuid.uuid4().hex[:10]}"
    store = LedgerStore(pg_pool)
    await store.allocate(idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=500_000)
    await add_review_panel(pg_pool, partnership)
    start, end = _recent_week()
    # Weekday holidays in FR could shorten the week below 5 days; the price is read back, not assumed.
    app = application(
        visitor_partnership_id=partnership,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        submitted_at=datetime.combine(start - timedelta(days=35), time(9, 0), tzinfo=UTC).isoformat(),
    )
    client = ExchangeClient(dev_server_env.client, task_queue)
    address = dev_server_env.client.service_client.config.target_host
    environment = os.environ | {"TEMPORAL_ADDRESS": address, "DATABASE_URL": database_url, "CX_TASK_QUEUE": task_queue}
    crashing = subprocess.Popen(  # noqa: ASYNC220 - started once; it runs beside the test, not awaited here
        [sys.executable, "-m", "tests.faults.crashing_worker"], cwd=ROOT, env=environment
    )
    try:
        await client.start_exchange(app)
        await approve(client, app.application_id)
        await wait_for_stage(client, app.application_id, Stage.AGREEMENT)
        await agree(client, app.application_id)
        await wait_for_stage(client, app.application_id, Stage.REPORTING)
        await client.submit_report(
            app.application_id,
            {
                "actor_id": "visitor",
                "summary": "Done.",
                "evidence": await uploaded_evidence(pg_pool, app.application_id),
            },
        )
        await validate(client, app.application_id)
        exit_code = await asyncio.to_thread(crashing.wait, 60)
    finally:
        if crashing.poll() is None:
            crashing.kill()
            crashing.wait()
    assert exit_code == 137, "the stand-in must have died right after its commit"
    orders = "SELECT count(*) FROM payment_orders WHERE application_id = $1"
    assert await pg_pool.fetchval(orders, app.application_id) == 1  # committed before the crash

    async with build_worker(dev_server_env.client, pg_pool, task_queue):
        # Temporal retries post_payment once its 30 s start-to-close timeout passes.
        status = await until(client, app.application_id, lambda s: s.payment_order_id is not None, within_s=90)
        await client.confirm_payment(
            app.application_id,
            {
                "payment_order_id": status.payment_order_id,
                "amount_cents": status.paid_cents,
                "payment_reference": "SEPA-9",
                "confirmed_by": "finance",
            },
        )
        outcome = await client.result(app.application_id)
    assert outcome.stage is Stage.PAID and outcome.paid_cents == status.grant_cents
    assert await pg_pool.fetchval(orders, app.application_id) == 1
    outbox = await pg_pool.fetchval(
        "SELECT count(*) FROM outbox WHERE dedup_key = $1", f"payment-order:{app.application_id}"
    )
    assert outbox == 1
    kinds = sorted(t.kind.value for t in await store.exchange_history(app.application_id))
    assert kinds == ["hold", "pay_out", "post"]
