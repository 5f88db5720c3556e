"""A small programme driven through the real engine, in a database of its own, for the KPI and export tests.

Four exchanges of one partnership (1,000,000 cents allocated) on the time-skipping server with the real
activities, so every figure of the report can be computed by hand:

- A: PL -> FR cluster organisations, paid at once after its order (95,000 cents);
- B: an SME from CZ -> FR, paid 12 days after its order (late: R11's 10 days);
- C: PL -> PL, ineligible (R5: the countries must differ);
- D: PL -> FR, started 57 days later, approved and funded, its 95,000 cents still held.

The database is the fixture's own (not the session's shared one), so the whole report is these four. The
test server's clock jumps (45 days for the stays, 12 more for B's late payment): audit events carry the
workflows' clock, the ledger the database's, so the tests choose windows by the fixture's recorded instants.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.exchange import ApplicationInput
from schemas.search import register_search_attributes
from schemas.stages import Stage
from tests.factories import KRAKOW, application, full_week_ahead
from tests.payload_keys import TEST_DATA_CONVERTER
from tests.workflows.conftest import (
    add_review_panel,
    agree,
    approve,
    until,
    uploaded_evidence,
    validate,
    wait_for_stage,
)
from workers.devstack import TEMPORAL_TEST_SERVER, free_port
from workers.main import build_worker

ALLOCATED_CENTS = 1_000_000
STAYS_OVER_DAYS = 45
GRANT_CENTS = 95_000  # a 5-working-day stay in France (group 2: 950 EUR)
PRAGUE = {"latitude": 50.0755, "longitude": 14.4378}
WARSAW = {"latitude": 52.2297, "longitude": 21.0122}


@dataclass(frozen=True)
class Programme:
    """What the fixture drove, and the test server's clock around each step (for hand-computed figures)."""

    database_url: str
    pool: asyncpg.Pool
    partnership: str
    paid_on_time: str  # A
    paid_late: str  # B
    ineligible: str  # C
    held: str  # D
    started: tuple[datetime, datetime]  # before starting A, B, C and after
    a_confirmed: tuple[datetime, datetime]  # around A's confirmation
    b_confirmed: tuple[datetime, datetime]  # around B's
    d_started: tuple[datetime, datetime]
    ended: datetime


def _apps(partnership: str) -> dict[str, ApplicationInput]:
    both = {"visitor_partnership_id": partnership, "host_partnership_id": partnership}
    pl = {"organisation_id": f"vo-{uuid.uuid4().hex[:8]}", "name": "Krakow Cluster", "type": "cluster_organisation"}
    sme = {
        "organisation_id": f"vo-{uuid.uuid4().hex[:8]}",
        "name": "Prague Lasers s.r.o.",
        "type": "sme",
        "country": "CZ",
        "member_of_profiled_cluster": True,
        **PRAGUE,
    }
    warsaw_host = {
        "organisation_id": f"ho-{uuid.uuid4().hex[:8]}",
        "name": "Warsaw Hub",
        "type": "scale_up_support",
        "country": "PL",
        **WARSAW,
    }
    start, end = full_week_ahead(11, "FR")  # D starts 57 days into the test server's future: still 10+ days ahead
    return {
        "A": application(**both),
        "B": application(**both, visitor=sme),
        "C": application(**both, visitor={**pl, "country": "PL", **KRAKOW}, host=warsaw_host),
        "D": application(**both, start_date=start.isoformat(), end_date=end.isoformat()),
    }


async def confirm_payment_of(
    client: ExchangeClient, env: WorkflowEnvironment, app_id: str
) -> tuple[datetime, datetime]:
    status = await until(client, app_id, lambda s: s.payment_order_id is not None, "the payment order", within_s=30)
    before = await env.get_current_time()
    payload = {
        "payment_order_id": status.payment_order_id,
        "amount_cents": status.paid_cents,
        "payment_reference": f"SEPA-{app_id}",
        "confirmed_by": "finance-fia",
    }
    await client.confirm_payment(app_id, payload)
    await wait_for_stage(client, app_id, Stage.PAID)
    return before, await env.get_current_time()


async def report_and_validate(client: ExchangeClient, pool: asyncpg.Pool, app_id: str) -> None:
    await wait_for_stage(client, app_id, Stage.REPORTING)
    evidence = await uploaded_evidence(pool, app_id)
    await client.submit_report(app_id, {"actor_id": "visitor-vera", "summary": "Done.", "evidence": evidence})
    await validate(client, app_id)


async def to_agreement(client: ExchangeClient, app_id: str, sign: bool) -> None:
    await wait_for_stage(client, app_id, Stage.REVIEW)
    await approve(client, app_id)
    await wait_for_stage(client, app_id, Stage.AGREEMENT)
    if sign:
        await agree(client, app_id)


async def drive(pool: asyncpg.Pool, database_url: str, env: WorkflowEnvironment, client: ExchangeClient) -> Programme:
    """The four exchanges, step by step (status polls only: awaiting a result would let the clock run)."""
    partnership = f"p-kpi-{uuid.uuid4().hex[:8]}"
    await LedgerStore(pool).allocate(
        idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=ALLOCATED_CENTS
    )
    await add_review_panel(pool, partnership)
    apps = _apps(partnership)
    a, b, c, d = (apps[k] for k in "ABCD")
    t0 = await env.get_current_time()
    for app in (a, b, c):
        await client.start_exchange(app)
    t1 = await env.get_current_time()
    await asyncio.gather(
        to_agreement(client, a.application_id, sign=True),
        to_agreement(client, b.application_id, sign=True),
        wait_for_stage(client, c.application_id, Stage.INELIGIBLE),
    )
    # Past both stays (3 weeks ahead, up to two more for holidays), before their reports are due (30 days after).
    await env.sleep(timedelta(days=STAYS_OVER_DAYS))
    await asyncio.gather(
        report_and_validate(client, pool, a.application_id), report_and_validate(client, pool, b.application_id)
    )
    a_confirmed = await confirm_payment_of(client, env, a.application_id)
    await until(client, b.application_id, lambda s: s.payment_order_id is not None, "B's payment order")
    await env.sleep(timedelta(days=12))  # B's order waits past the 10-day SLA
    b_confirmed = await confirm_payment_of(client, env, b.application_id)
    d0 = await env.get_current_time()
    await client.start_exchange(d)
    d1 = await env.get_current_time()
    await to_agreement(client, d.application_id, sign=False)
    return Programme(
        database_url=database_url,
        pool=pool,
        partnership=partnership,
        paid_on_time=a.application_id,
        paid_late=b.application_id,
        ineligible=c.application_id,
        held=d.application_id,
        started=(t0, t1),
        a_confirmed=a_confirmed,
        b_confirmed=b_confirmed,
        d_started=(d0, d1),
        ended=await env.get_current_time(),
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def programme(make_database: Callable[[], Awaitable[str]]) -> AsyncIterator[Programme]:
    """The small programme above, driven once per session in its own database."""
    database_url = await make_database()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_DATA_CONVERTER, test_server_existing_path=str(TEMPORAL_TEST_SERVER), port=free_port()
    )
    try:
        await register_search_attributes(env.client, "default")
        task_queue = f"cx-kpi-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, pool, task_queue):
            driven = await drive(pool, database_url, env, ExchangeClient(env.client, task_queue))
        yield driven
    finally:
        await env.shutdown()
        await pool.close()
