"""The ledger under concurrency: a hot budget cannot be overspent, the same key books once, and a hold is
resolved once, with no deadlock and no SERIALIZABLE retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from ledger.checks import check_ledger
from ledger.errors import BudgetExhausted, HoldAlreadyResolved
from ledger.store import LedgerStore
from schemas.ledger import Transfer
from tests.ledger.conftest import Ids, balance

GRANT_CENTS = 1_100 * 100  # 1,100 EUR
HOLDS = 500
FITTING = 100
DEADLINE_S = 120.0  # a deadlock would hang (Postgres breaks one after deadlock_timeout); this bounds it


@pytest_asyncio.fixture(scope="module")
async def wide_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """40 connections: enough for 500 callers to pile up on one budget row at once."""
    pool = await asyncpg.create_pool(database_url, min_size=40, max_size=40)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.mark.parametrize("gate", [None, 8], ids=["all-40-connections-on-the-row", "store-gate-8"])
async def test_500_concurrent_holds_on_a_budget_that_fits_100(
    wide_pool: asyncpg.Pool, ids: Ids, gate: int | None
) -> None:
    """500 concurrent holds of 1,100 EUR on a budget of exactly 100 of them: 100 succeed, 400 get BudgetExhausted.

    Without the store's per-budget gate, all 40 pooled connections wait on the budget row at once.
    """
    store = LedgerStore(wide_pool, holds_in_flight_per_budget=gate)
    partnership = ids.partnership()
    await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=FITTING * GRANT_CENTS)

    async def hold(n: int) -> Transfer | BaseException:
        try:
            return await store.hold(
                idempotency_key=f"{ids.prefix}:hold:{n}",
                partnership_id=partnership,
                application_id=ids.exchange(f"e{n}"),
                amount_cents=GRANT_CENTS,
            )
        except BudgetExhausted as refused:
            return refused

    outcomes = await asyncio.wait_for(asyncio.gather(*(hold(n) for n in range(HOLDS))), DEADLINE_S)
    held = [o for o in outcomes if isinstance(o, Transfer)]
    refused = [o for o in outcomes if isinstance(o, BudgetExhausted)]
    assert (len(held), len(refused)) == (FITTING, HOLDS - FITTING)
    assert all(r.requested_cents == GRANT_CENTS and 0 <= r.available_cents < GRANT_CENTS for r in refused)
    assert await balance(store, partnership) == (FITTING * GRANT_CENTS, FITTING * GRANT_CENTS, 0, 0)
    # Refused holds left no exchange account behind, and the whole ledger still adds up.
    exchanges = await wide_pool.fetchval(
        "SELECT count(*) FROM ledger_accounts WHERE kind = 'exchange' AND partnership_id = $1", partnership
    )
    assert exchanges == FITTING
    report = await check_ledger(wide_pool)
    assert report.ok, report


async def test_concurrent_calls_with_one_key_book_once(wide_pool: asyncpg.Pool, ids: Ids) -> None:
    """30 concurrent identical holds with one key book one transfer; every caller gets it, 29 as replays."""
    store = LedgerStore(wide_pool, holds_in_flight_per_budget=None)
    partnership = ids.partnership()
    await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=10 * GRANT_CENTS)
    key = ids.key("same")

    results = await asyncio.wait_for(
        asyncio.gather(
            *(
                store.hold(
                    idempotency_key=key,
                    partnership_id=partnership,
                    application_id=ids.exchange(),
                    amount_cents=GRANT_CENTS,
                )
                for _ in range(30)
            )
        ),
        DEADLINE_S,
    )
    assert len({r.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert await balance(store, partnership) == (10 * GRANT_CENTS, GRANT_CENTS, 0, 9 * GRANT_CENTS)


async def test_concurrent_posts_and_voids_resolve_a_hold_once(wide_pool: asyncpg.Pool, ids: Ids) -> None:
    """20 concurrent posts and voids of one hold (different keys): one wins, 19 get HoldAlreadyResolved naming it."""
    store = LedgerStore(wide_pool)
    partnership = ids.partnership()
    await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=GRANT_CENTS)
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange(), amount_cents=GRANT_CENTS
    )

    async def resolve(n: int) -> Transfer | HoldAlreadyResolved:
        try:
            if n % 2:
                return await store.void(idempotency_key=ids.key("void"), hold_id=hold.id)
            return await store.post(idempotency_key=ids.key("post"), hold_id=hold.id, amount_cents=GRANT_CENTS - n)
        except HoldAlreadyResolved as refused:
            return refused

    outcomes = await asyncio.wait_for(asyncio.gather(*(resolve(n) for n in range(20))), DEADLINE_S)
    winners = [o for o in outcomes if isinstance(o, Transfer)]
    losers = [o for o in outcomes if isinstance(o, HoldAlreadyResolved)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert all(loser.resolution_id == winners[0].id for loser in losers)
    _, held, paid, available = await balance(store, partnership)
    assert held == 0
    assert paid + available == GRANT_CENTS


async def test_the_budget_gate_queues_excess_holds_without_a_connection(database_url: str, ids: Ids) -> None:
    """With a gate of 1, a second hold on a busy budget waits in the store holding no connection, while a
    hold on another budget goes straight through; both finish once the budget row is free."""
    pool = await asyncpg.create_pool(database_url, min_size=3, max_size=3)
    try:
        store = LedgerStore(pool, holds_in_flight_per_budget=1)
        busy, other = ids.partnership("busy"), ids.partnership("other")
        for partnership in (busy, other):
            await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=GRANT_CENTS * 3)

        def hold(partnership: str, name: str) -> asyncio.Task[Transfer]:
            return asyncio.create_task(
                store.hold(
                    idempotency_key=ids.key(name),
                    partnership_id=partnership,
                    application_id=ids.exchange(name),
                    amount_cents=GRANT_CENTS,
                )
            )

        async with pool.acquire() as locker, locker.transaction():
            await locker.execute("SELECT 1 FROM ledger_accounts WHERE code = $1 FOR UPDATE", f"budget:{busy}")
            first, second = hold(busy, "first"), hold(busy, "second")
            await asyncio.sleep(0.3)  # first waits on the row lock (one connection), second on the gate (none)
            assert not first.done()
            assert not second.done()
            assert pool.get_idle_size() == 1
            elsewhere = await asyncio.wait_for(hold(other, "elsewhere"), 10)
            assert elsewhere.debit_account == f"budget:{other}"
        done = await asyncio.wait_for(asyncio.gather(first, second), 10)
        assert [t.credit_account for t in done] == [f"exchange:{ids.exchange(n)}" for n in ("first", "second")]
        with pytest.raises(ValueError, match="holds_in_flight_per_budget"):
            LedgerStore(pool, holds_in_flight_per_budget=0)
    finally:
        await pool.close()
