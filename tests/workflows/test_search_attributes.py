"""Search attributes on the dev server: ops can find an exchange by stage and partnership, and they follow it."""

from __future__ import annotations

import uuid

import asyncpg

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.stages import Stage
from tests.factories import application
from tests.waiting import eventually
from tests.workflows.conftest import add_review_panel, approve, assigned, result_of, wait_for_stage
from tests.workflows.conftest import dev_client as dev_client


async def _ids(client: ExchangeClient, query: str) -> set[str]:
    """The workflow ids `query` lists, once it lists any: visibility is eventually consistent."""

    async def listed() -> set[str]:
        return {w.id async for w in client.temporal.list_workflows(query)}

    return await eventually(listed, bool, f"visibility to list {query}", within_s=10, poll_s=0.1)


async def test_ops_find_an_exchange_by_stage_partnership_and_grant(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool
) -> None:
    """`CxStage='REVIEW' AND CxPartnership=...` finds the exchange; after funding, its stage and grant follow."""
    partnership = f"p-{uuid.uuid4().hex[:10]}"
    await LedgerStore(pg_pool).allocate(
        idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=500_000
    )
    await add_review_panel(pg_pool, partnership)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    await assigned(dev_client, app.application_id)
    in_review = await _ids(dev_client, f"CxStage = 'REVIEW' AND CxPartnership = '{partnership}'")
    assert in_review == {f"exchange:{app.application_id}"}
    await approve(dev_client, app.application_id)
    await wait_for_stage(dev_client, app.application_id, Stage.AGREEMENT)
    funded = await _ids(
        dev_client, f"CxStage = 'AGREEMENT' AND CxPartnership = '{partnership}' AND CxGrantCents = 95000"
    )
    assert funded == {f"exchange:{app.application_id}"}
    await dev_client.cancel(app.application_id, {"actor_id": "officer", "reason": "test finished"})
    await result_of(dev_client, app.application_id)
