"""FUNDING as the back office sees it: partnership records and budget top-ups, for `cx top-up` and the REST API.

A top-up books programme -> budget in the ledger under the key `<partnership>:top-up:<reference>` (so the
same decision books once, and the same reference with another amount is an IdempotencyConflict), then
tells the partnership's Funds workflow that money was released, which offers it to the waitlist, oldest
first (docs/adr/0008-waitlist-funds-workflow.md). It tells it as any other service would, through the
contract: a signal-with-start `released` (docs/contract.md, "The waitlist"; `ExchangeClient.announce_release`).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.ledger import PartnershipBalance, Transfer


@dataclass(frozen=True)
class PartnershipView:
    """A partnership's record (name; None for a budget allocated without one) and its balance, if any."""

    partnership_id: str
    name: str | None
    balance: PartnershipBalance | None


def top_up_key(partnership_id: str, reference: str) -> str:
    return f"{partnership_id}:top-up:{reference}"


async def top_up(
    pool: asyncpg.Pool, exchanges: ExchangeClient, *, partnership_id: str, amount_cents: int, reference: str
) -> Transfer:
    """Allocate `amount_cents` more to the partnership, then offer it to the waitlist. Re-run safe.

    The release is announced on a replay too: if a first run booked and then failed before announcing,
    the retry must still wake the waitlist; an extra announcement only makes the Funds workflow look again.
    """
    transfer = await LedgerStore(pool).allocate(
        idempotency_key=top_up_key(partnership_id, reference), partnership_id=partnership_id, amount_cents=amount_cents
    )
    await exchanges.announce_release(partnership_id, reason=f"top-up {reference}")
    return transfer


async def register_partnership(pool: asyncpg.Pool, partnership_id: str, name: str) -> bool:
    """Create the partnership's record, or rename it; True when it was created."""
    created: bool = await pool.fetchval(
        """INSERT INTO partnerships (partnership_id, name) VALUES ($1, $2)
           ON CONFLICT (partnership_id) DO UPDATE SET name = EXCLUDED.name
           RETURNING xmax = 0""",
        partnership_id,
        name,
    )
    return created


async def partnerships(pool: asyncpg.Pool) -> list[PartnershipView]:
    """Every partnership with a record or a budget (tests and imports may allocate without a record), by id."""
    names = {r["partnership_id"]: r["name"] for r in await pool.fetch("SELECT partnership_id, name FROM partnerships")}
    balances = {b.partnership_id: b for b in await LedgerStore(pool).partnership_balances()}
    return [PartnershipView(p, names.get(p), balances.get(p)) for p in sorted(names.keys() | balances.keys())]


async def partnership_known(pool: asyncpg.Pool, partnership_id: str) -> bool:
    """Whether the partnership has a record or a budget: a top-up never creates a partnership by a typo."""
    if await pool.fetchval("SELECT 1 FROM partnerships WHERE partnership_id = $1", partnership_id):
        return True
    return any(b.partnership_id == partnership_id for b in await LedgerStore(pool).partnership_balances())
