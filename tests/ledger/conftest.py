"""Fixtures of the ledger tests: a store on the session database, unique business ids per test, and a
fingerprint of everything the ledger holds (to prove that a refused request wrote nothing)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from itertools import count

import asyncpg
import pytest
import pytest_asyncio

from ledger.store import LedgerStore


@dataclass
class Ids:
    """Business ids unique to one test, so tests share the session database without interfering."""

    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    _counter: count[int] = field(default_factory=count)

    def partnership(self, name: str = "p") -> str:
        return f"{self.prefix}-{name}"

    def exchange(self, name: str = "e") -> str:
        return f"{self.prefix}-{name}"

    def key(self, name: str = "k") -> str:
        return f"{self.prefix}:{name}:{next(self._counter)}"


@pytest.fixture
def ids() -> Ids:
    return Ids()


@pytest_asyncio.fixture(scope="session")
async def store(pg_pool: asyncpg.Pool) -> LedgerStore:
    return LedgerStore(pg_pool)


async def fingerprint(pool: asyncpg.Pool) -> tuple[int, int, str]:
    """Transfers, entries and an md5 of every account row: equal before and after = nothing written."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM ledger_transfers) AS transfers,
                  (SELECT count(*) FROM ledger_entries) AS entries,
                  (SELECT md5(string_agg(a::text, '|' ORDER BY a.id)) FROM ledger_accounts a) AS accounts"""
    )
    assert row is not None
    return row["transfers"], row["entries"], row["accounts"]


async def balance(store: LedgerStore, partnership_id: str) -> tuple[int, int, int, int]:
    """(allocated, held, paid, available) of one partnership now."""
    for b in await store.partnership_balances():
        if b.partnership_id == partnership_id:
            return b.allocated_cents, b.held_cents, b.paid_cents, b.available_cents
    raise AssertionError(f"no budget for {partnership_id}")


async def account_totals(pool: asyncpg.Pool, code: str) -> tuple[int, int, int, int] | None:
    """(debits pending, debits posted, credits pending, credits posted) of one account, None if absent."""
    row = await pool.fetchrow(
        """SELECT debits_pending::bigint, debits_posted::bigint, credits_pending::bigint, credits_posted::bigint
             FROM ledger_accounts WHERE code = $1""",
        code,
    )
    return None if row is None else (row[0], row[1], row[2], row[3])
