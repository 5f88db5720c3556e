"""Fault run: a worker killed between posting the hold and finishing the activity still yields one payment order."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.stages import Stage
from tests.factories import application
from tests.waiting import eventually
from tests.workflows.conftest import (
    add_review_panel,
    agree,
    approve,
    result_of,
    until,
    uploaded_evidence,
    validate,
    wait_for_stage,
)
from workers.main import build_worker

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# Limits, each well above a healthy run (the whole test takes about a minute, 30 s of it Temporal's
# start-to-close timeout), so that a dead or stuck stand-in fails the test with a message, not a hang.
TO_PAYMENT_WITHIN_S = 60
CRASH_WITHIN_S = 30
POLL_S = 0.2
ANSWER_GRACE_S = 2


async def beside(stand_in: subprocess.Popen[bytes], step: Awaitable[T], what: str, within_s: float) -> T:
    """Await `step` while the stand-in worker serves it: bounded, and failing at once if the stand-in exits.

    Without a worker nothing answers an update or a query, so a stand-in that died early (an import error,
    a crash before its commit) would leave the test waiting forever: this names that instead.
    """
    task = asyncio.ensure_future(step)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    try:
        while not task.done():
            if stand_in.poll() is not None:
                # The step's answer may still be on its way when the stand-in dies right after the step
                # (its post_payment runs as the last update is answered): a short grace tells the two apart.
                await asyncio.wait({task}, timeout=ANSWER_GRACE_S)
                if task.done():
                    break
                raise AssertionError(
                    f"the stand-in worker exited early (code {stand_in.returncode}) while the test awaited {what};"
                    " its output is in the captured stderr"
                )
            if loop.time() >= deadline:
                raise AssertionError(f"waited {within_s:g} s for {what}; the stand-in worker is still running")
            await asyncio.wait({task}, timeout=POLL_S)
        return task.result()
    finally:
        task.cancel()


def _recent_week() -> tuple[date, date]:
    """Monday to Friday, two weeks ago: the stay is over, so its timers fire at once on the real clock."""
    monday = datetime.now(UTC).date() - timedelta(days=14)
    monday -= timedelta(days=monday.weekday())
    return monday, monday + timedelta(days=4)


# Temporal's 30 s start-to-close timeout must pass before the retry (about 35 s in all when healthy); each
# step has its own limit and fails first naming what it awaited: 60 + 30 + 60 + 60 s at the worst.
@pytest.mark.timeout(240)
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

    async def to_payment() -> None:
        """Drive the exchange to PAYMENT on the stand-in, whose post_payment then commits and dies."""
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

    try:
        await beside(crashing, to_payment(), "the exchange driven to PAYMENT on the stand-in", TO_PAYMENT_WITHIN_S)
        exit_code = await eventually(
            lambda: asyncio.sleep(0, crashing.poll()),
            lambda code: code is not None,
            "the stand-in to die in post_payment right after its commit",
            within_s=CRASH_WITHIN_S,
        )
    finally:
        if crashing.poll() is None:
            crashing.kill()
            crashing.wait(timeout=10)
    assert exit_code == 137, "the stand-in must have died right after its commit"
    orders = "SELECT count(*) FROM payment_orders WHERE application_id = $1"
    assert await pg_pool.fetchval(orders, app.application_id) == 1  # committed before the crash

    async with build_worker(dev_server_env.client, pg_pool, task_queue):
        # Temporal retries post_payment once its 30 s start-to-close timeout passes.
        status = await until(
            client, app.application_id, lambda s: s.payment_order_id is not None, "the payment order", within_s=60
        )
        await client.confirm_payment(
            app.application_id,
            {
                "payment_order_id": status.payment_order_id,
                "amount_cents": status.paid_cents,
                "payment_reference": "SEPA-9",
                "confirmed_by": "finance",
            },
        )
        outcome = await result_of(client, app.application_id)
    assert outcome.stage is Stage.PAID
    assert outcome.paid_cents == status.grant_cents
    assert await pg_pool.fetchval(orders, app.application_id) == 1
    outbox = await pg_pool.fetchval(
        "SELECT count(*) FROM outbox WHERE dedup_key = $1", f"payment-order:{app.application_id}"
    )
    assert outbox == 1
    kinds = sorted(t.kind.value for t in await store.exchange_history(app.application_id))
    assert kinds == ["hold", "pay_out", "post"]


async def test_the_harness_fails_at_once_naming_a_stand_in_that_died_early() -> None:
    """A stand-in that exits before the step it serves is done fails the step with its exit code, not a hang."""
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])  # noqa: ASYNC220 - exits at once
    started = asyncio.get_running_loop().time()
    with pytest.raises(AssertionError, match=r"exited early \(code 3\) while the test awaited a step that never ends"):
        await beside(dead, asyncio.Event().wait(), "a step that never ends", within_s=60)
    assert asyncio.get_running_loop().time() - started < 60 / 2, "it failed when the stand-in died, not at the limit"


async def test_the_harness_names_a_step_that_outlives_its_limit_beside_a_live_stand_in() -> None:
    """A step still pending at its limit fails naming the step, even while the stand-in still runs."""
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # noqa: ASYNC220 - killed below
    try:
        with pytest.raises(AssertionError, match=r"waited 0\.5 s for a slow step; the stand-in worker is still"):
            await beside(alive, asyncio.Event().wait(), "a slow step", within_s=0.5)
    finally:
        alive.kill()
        alive.wait(timeout=10)
