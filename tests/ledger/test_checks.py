"""The ledger checks: all pass on a clean ledger, and each forged breach (written behind the functions' back,
in a throwaway database) is reported by name, with the ids involved."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from ledger.checks import check_ledger
from ledger.store import LedgerStore
from schemas.ledger import CheckReport

ALL_CHECKS = {
    "debits_equal_credits",
    "transfers_balance",
    "entries_match_transfers",
    "running_balances",
    "holds_resolved_at_most_once",
    "no_budget_below_zero",
    "paid_not_above_held",
    "accounts_well_formed",
    "transfers_well_formed",
    "database_guards_in_place",
    "no_open_hold_on_terminal_exchange",
}


@dataclass
class Booked:
    """What `_book_some` wrote: a paid exchange, an open hold, a voided hold."""

    paid_exchange: str
    posted_hold_id: int
    open_exchange: str
    open_hold_id: int
    voided_hold_id: int


async def _book_some(pool: asyncpg.Pool) -> Booked:
    store = LedgerStore(pool)
    await store.allocate(idempotency_key="a1", partnership_id="p1", amount_cents=10_000)
    posted = await store.hold(idempotency_key="h1", partnership_id="p1", application_id="e1", amount_cents=3_000)
    await store.post(idempotency_key="po1", hold_id=posted.id, amount_cents=2_000)
    await store.pay_out(idempotency_key="pay1", application_id="e1", amount_cents=1_500)
    open_hold = await store.hold(idempotency_key="h2", partnership_id="p1", application_id="e2", amount_cents=1_000)
    voided = await store.hold(idempotency_key="h3", partnership_id="p1", application_id="e3", amount_cents=500)
    await store.void(idempotency_key="v3", hold_id=voided.id)
    await store.rehold(idempotency_key="r2", hold_id=open_hold.id, amount_cents=1_200)
    reheld = await store.open_hold("e2")
    assert reheld is not None
    return Booked("e1", posted.id, "e2", reheld.id, voided.id)


@pytest_asyncio.fixture
async def throwaway(make_database: Callable[[], Awaitable[str]]) -> AsyncIterator[tuple[asyncpg.Pool, Booked]]:
    """A fresh migrated database with a little activity, ours to vandalise."""
    pool = await asyncpg.create_pool(await make_database(), min_size=1, max_size=4)
    try:
        yield pool, await _book_some(pool)
    finally:
        await pool.close()


async def _use_minimal_exchanges_table(pool: asyncpg.Pool) -> None:
    """Replace the read model's exchanges table (if any) by the two columns the check reads."""
    await pool.execute("DROP TABLE IF EXISTS exchanges CASCADE")
    await pool.execute("CREATE TABLE exchanges (application_id text PRIMARY KEY, stage text NOT NULL)")


def _breached(report: CheckReport) -> dict[str, tuple[str, ...]]:
    return {c.name: c.breaches for c in report.checks if not c.ok}


async def test_every_check_passes_on_a_clean_ledger(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """On a ledger written only through the store, every check runs and passes."""
    pool, _ = throwaway
    report = await check_ledger(pool)
    assert {c.name for c in report.checks} == ALL_CHECKS
    assert report.ok, _breached(report)
    assert all(c.breach_count == 0 and c.breaches == () for c in report.checks)


async def test_the_terminal_stage_check_is_skipped_without_a_read_model(
    throwaway: tuple[asyncpg.Pool, Booked],
) -> None:
    """Without an exchanges table the terminal-stage check says it was skipped instead of failing."""
    pool, _ = throwaway
    await pool.execute("DROP TABLE IF EXISTS exchanges CASCADE")
    report = await check_ledger(pool)
    skipped = [c for c in report.checks if c.skipped]
    assert [c.name for c in skipped] == ["no_open_hold_on_terminal_exchange"]
    assert skipped[0].ok
    assert "Skipped" in skipped[0].description
    assert report.ok


async def test_open_hold_on_a_terminal_exchange_is_a_breach(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """An exchange LAPSED in the read model with its hold still pending is reported; a PAID one without is not."""
    pool, booked = throwaway
    await _use_minimal_exchanges_table(pool)
    await pool.execute(
        "INSERT INTO exchanges VALUES ($1, 'LAPSED'), ($2, 'PAID'), ($3, 'TRAVEL')",
        booked.open_exchange,
        booked.paid_exchange,
        "e3",
    )
    breached = _breached(await check_ledger(pool))
    assert set(breached) == {"no_open_hold_on_terminal_exchange"}
    (breach,) = breached["no_open_hold_on_terminal_exchange"]
    assert f"exchange {booked.open_exchange} is LAPSED" in breach
    assert f"hold #{booked.open_hold_id}" in breach


async def test_money_from_nowhere_is_a_breach(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """A budget credited by hand (no transfer) breaks debits = credits and the running balances."""
    pool, _ = throwaway
    await pool.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE code = 'budget:p1'")
    breached = _breached(await check_ledger(pool))
    assert set(breached) == {"debits_equal_credits", "running_balances"}
    assert "budget:p1" in breached["running_balances"][0]


async def test_a_hold_resolved_twice_is_a_breach(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """With the unique index dropped, a second void of a posted hold is reported with both resolutions."""
    pool, booked = throwaway
    await pool.execute("DROP INDEX ledger_transfers_resolves_uidx")
    await pool.execute(
        """INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                         amount_cents, pending_id, created_at)
           SELECT 'forged', sha256('forged'), 'void', debit_account_id, credit_account_id, amount_cents, id, now()
             FROM ledger_transfers WHERE id = $1""",
        booked.posted_hold_id,
    )
    breached = _breached(await check_ledger(pool))
    assert {"holds_resolved_at_most_once", "database_guards_in_place", "entries_match_transfers"} <= set(breached)
    twice = f"hold #{booked.posted_hold_id} is resolved 2 times"
    assert any(twice in b for b in breached["holds_resolved_at_most_once"])
    assert any("ledger_transfers_resolves_uidx" in b for b in breached["database_guards_in_place"])


async def test_an_overspent_budget_is_a_breach(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """With the CHECK dropped, a budget holding more than it was given is reported, as is the missing CHECK."""
    pool, _ = throwaway
    await pool.execute("ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_debits_within_credits")
    await pool.execute("UPDATE ledger_accounts SET debits_pending = credits_posted + 5 WHERE code = 'budget:p1'")
    breached = _breached(await check_ledger(pool))
    assert {"no_budget_below_zero", "database_guards_in_place", "debits_equal_credits"} <= set(breached)
    assert breached["no_budget_below_zero"][0].startswith("budget:p1: debits")


async def test_paying_out_more_than_was_held_is_a_breach(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """A pay-out inserted by hand beyond what was posted is reported for its exchange."""
    pool, booked = throwaway
    await pool.execute(
        """INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                         amount_cents, created_at)
           SELECT 'forged', sha256('forged'), 'pay_out', x.id, p.id, 5000, now()
             FROM ledger_accounts x, ledger_accounts p WHERE x.code = $1 AND p.code = 'payouts'""",
        f"exchange:{booked.paid_exchange}",
    )
    breached = _breached(await check_ledger(pool))
    assert {"paid_not_above_held", "entries_match_transfers"} <= set(breached)
    assert breached["paid_not_above_held"] == (
        f"exchange:{booked.paid_exchange}: paid out 6500 cents, posted 2000 cents of holds totalling 3000 cents",
    )


async def test_edited_history_is_a_breach(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """With the immutability trigger disabled, an edited hold amount no longer matches its entries."""
    pool, booked = throwaway
    await pool.execute("ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_immutable")
    await pool.execute("UPDATE ledger_transfers SET amount_cents = 1 WHERE id = $1", booked.voided_hold_id)
    breached = _breached(await check_ledger(pool))
    assert {"entries_match_transfers", "holds_resolved_at_most_once", "database_guards_in_place"} <= set(breached)
    assert any(f"transfer #{booked.voided_hold_id}," in b for b in breached["entries_match_transfers"])
    assert breached["database_guards_in_place"] == (
        "trigger ledger_transfers_immutable on ledger_transfers is missing or disabled",
    )


async def test_a_transfer_between_the_wrong_accounts_is_a_breach(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """A hold from the programme straight to an exchange (skipping a budget) is reported as malformed."""
    pool, _ = throwaway
    forged_id = await pool.fetchval(
        """INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                         amount_cents, created_at)
           SELECT 'forged', sha256('forged'), 'hold', g.id, x.id, 10, now()
             FROM ledger_accounts g, ledger_accounts x WHERE g.code = 'programme' AND x.code = 'exchange:e1'
           RETURNING id"""
    )
    breached = _breached(await check_ledger(pool))
    assert breached["transfers_well_formed"] == (f"transfer #{forged_id} (hold): moves programme -> exchange:e1",)


async def test_breach_lists_are_bounded(throwaway: tuple[asyncpg.Pool, Booked]) -> None:
    """A check lists at most max_breaches breaches but counts them all."""
    pool, _ = throwaway
    await pool.execute(
        """INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                         amount_cents, created_at)
           SELECT 'forged' || n, sha256('forged'), 'allocate', g.id, b.id, 1, now()
             FROM generate_series(1, 30) n, ledger_accounts g, ledger_accounts b
            WHERE g.code = 'programme' AND b.code = 'budget:p1'"""
    )
    report = await check_ledger(pool, max_breaches=5)
    entries = next(c for c in report.checks if c.name == "entries_match_transfers")
    assert len(entries.breaches) == 5
    assert entries.breach_count == 60


@pytest.mark.parametrize("stage", ["paid", " LAPSED"])
async def test_terminal_stage_matching_is_exact_up_to_case(throwaway: tuple[asyncpg.Pool, Booked], stage: str) -> None:
    """Stages are compared case-insensitively but otherwise exactly ('paid' is terminal, ' LAPSED' is not a stage)."""
    pool, booked = throwaway
    await _use_minimal_exchanges_table(pool)
    await pool.execute("INSERT INTO exchanges VALUES ($1, $2)", booked.open_exchange, stage)
    breached = _breached(await check_ledger(pool))
    assert ("no_open_hold_on_terminal_exchange" in breached) == (stage == "paid")
