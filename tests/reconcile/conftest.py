"""A small programme of its own for the reconciliation tests: a fresh database, a worker on the session's dev
server with a task queue no other test uses, and three exchanges (one PAID, one holding money in AGREEMENT,
one in REVIEW), each settled (its search attributes published) before any test compares anything.

The PAID one is dated in the recent past, the way the demo imports exchanges already under way
(docs/adr/0004-demo-dates.md), so its travel timers are due at once on the real dev server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from rules.calendar import working_days
from schemas.exchange import ApplicationInput
from schemas.reconcile import RECONCILE_WORKFLOW_TYPE, ReconcileInput, ReconcileResult
from schemas.search import CX_STAGE
from schemas.stages import Stage
from tests.factories import application
from tests.waiting import eventually, within
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

PROGRAMME_ADDRESS = "programme@example.org"
RUN_WITHIN_S = 60


@dataclass(frozen=True)
class World:
    client: ExchangeClient
    pool: asyncpg.Pool
    database_url: str
    partnership: str
    paid: str  # application ids
    agreement: str
    review: str

    @property
    def temporal(self) -> Client:
        return self.client.temporal

    @property
    def task_queue(self) -> str:
        return self.client.task_queue


def past_week(weeks_ago: int, country: str) -> tuple[date, date]:
    """A Monday-to-Friday stay with 5 working days in `country` that ended about `weeks_ago` weeks ago."""
    monday = datetime.now(UTC).date() - timedelta(days=7 * weeks_ago)
    monday -= timedelta(days=monday.weekday())
    while working_days(monday, monday + timedelta(days=4), country) < 5:
        monday -= timedelta(days=7)
    return monday, monday + timedelta(days=4)


def past_application(partnership: str) -> ApplicationInput:
    start, end = past_week(3, "FR")
    return application(
        visitor_partnership_id=partnership,
        host_partnership_id=partnership,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        submitted_at=datetime.combine(start - timedelta(days=35), time(9, 30), tzinfo=UTC),
    )


async def drive_to_paid(client: ExchangeClient, pool: asyncpg.Pool, partnership: str) -> str:
    """Submission to PAID on the dev server: reviews, agreement, the (past) stay, report, payment confirmed."""
    app = past_application(partnership)
    app_id = app.application_id
    await client.start_exchange(app)
    await approve(client, app_id)
    await wait_for_stage(client, app_id, Stage.AGREEMENT)
    await agree(client, app_id)
    await wait_for_stage(client, app_id, Stage.REPORTING)
    await client.submit_report(
        app_id, {"actor_id": "visitor-vera", "summary": "Done.", "evidence": await uploaded_evidence(pool, app_id)}
    )
    await validate(client, app_id)
    status = await until(client, app_id, lambda s: s.payment_order_id is not None, "the payment order", within_s=30)
    assert status.payment_order_id is not None
    await client.confirm_payment(
        app_id,
        {
            "payment_order_id": status.payment_order_id,
            "amount_cents": status.paid_cents,
            "payment_reference": f"SEPA-{app_id}",
            "confirmed_by": "finance-fia",
        },
    )
    assert (await result_of(client, app_id)).stage is Stage.PAID
    return app_id


async def published(temporal: Client, application_id: str, stage: Stage) -> None:
    """Wait until the visibility store shows the exchange's CxStage as `stage` (its last upsert is indexed)."""
    handle = temporal.get_workflow_handle(f"exchange:{application_id}")
    await eventually(
        handle.describe,
        lambda d: d.typed_search_attributes.get(CX_STAGE) == stage.value,
        f"{application_id}: CxStage {stage.value} indexed",
    )


async def run_reconcile(world: World) -> ReconcileResult:
    """One Reconcile run at once (nothing left to settle), awaited within a bound."""
    handle = await world.temporal.start_workflow(
        RECONCILE_WORKFLOW_TYPE,
        ReconcileInput(settle_seconds=0, page_size=2),  # pages of 2: three exchanges take several pages
        id=f"reconcile-test-{uuid.uuid4().hex[:8]}",
        task_queue=world.task_queue,
        result_type=ReconcileResult,
    )
    return await within(handle.result(), "the Reconcile run's result", RUN_WITHIN_S)


@pytest_asyncio.fixture(scope="module")
async def world(
    dev_server_env: WorkflowEnvironment, make_database: Callable[[], Awaitable[str]]
) -> AsyncIterator[World]:
    database_url = await make_database()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    task_queue = f"cx-reconcile-{uuid.uuid4().hex[:8]}"
    try:
        partnership = f"p-{uuid.uuid4().hex[:10]}"
        await LedgerStore(pool).allocate(
            idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=1_000_000
        )
        await add_review_panel(pool, partnership)
        async with build_worker(dev_server_env.client, pool, task_queue, notify_email=PROGRAMME_ADDRESS):
            client = ExchangeClient(dev_server_env.client, task_queue)
            paid = await drive_to_paid(client, pool, partnership)
            agreement_app = application(visitor_partnership_id=partnership, host_partnership_id=partnership)
            await client.start_exchange(agreement_app)
            await approve(client, agreement_app.application_id)
            await wait_for_stage(client, agreement_app.application_id, Stage.AGREEMENT)
            review_app = application(visitor_partnership_id=partnership, host_partnership_id=partnership)
            await client.start_exchange(review_app)
            await wait_for_stage(client, review_app.application_id, Stage.REVIEW)
            for app_id, stage in (
                (paid, Stage.PAID),
                (agreement_app.application_id, Stage.AGREEMENT),
                (review_app.application_id, Stage.REVIEW),
            ):
                await published(dev_server_env.client, app_id, stage)
            yield World(
                client=client,
                pool=pool,
                database_url=database_url,
                partnership=partnership,
                paid=paid,
                agreement=agreement_app.application_id,
                review=review_app.application_id,
            )
    finally:
        await pool.close()


async def ledger_fingerprint(pool: asyncpg.Pool) -> str:
    """An md5 of every ledger row (accounts, transfers, entries): equal before and after = not a byte written."""
    fingerprint: str = await pool.fetchval(
        """SELECT md5(concat_ws('#',
                  (SELECT string_agg(a::text, '|' ORDER BY a.id) FROM ledger_accounts a),
                  (SELECT string_agg(t::text, '|' ORDER BY t.id) FROM ledger_transfers t),
                  (SELECT string_agg(e::text, '|' ORDER BY e.account_id, e.transfer_id) FROM ledger_entries e)))"""
    )
    return fingerprint
