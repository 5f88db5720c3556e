"""The programme's figures for the gauges `cx api` serves at /metrics (issue 15, item 6; docs/operations.md).

Read in one snapshot (a REPEATABLE READ, read-only transaction) so the budget and the exchange figures of
one scrape agree with each other:
- budgets per partnership, allocated / held / paid / available: the ledger's own balances
  (LedgerStore.partnership_balances, the figures `cx budget` prints), never recomputed here;
- open and closed exchanges per stage, from the read model (`exchanges`);
- late exchanges per deadline: open exchanges whose next deadline has passed (the rule of `cx ops late`).
  The read model keeps the next deadline's instant, not its name, so a late exchange is counted under the
  deadline its stage waits on (`review`, `signatures`, `report`, `payment_sla`, ...; schemas/events.py
  DeadlineKey names them).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ledger.store import LedgerStore
from schemas.ledger import PartnershipBalance
from schemas.stages import TERMINAL_STAGES, Stage

# The deadline each open stage waits on (a stage with several, REVIEW or REPORTING, by its family name).
STAGE_DEADLINES: dict[str, str] = {
    Stage.SUBMITTED: "screening",
    Stage.SCREENING: "screening",
    Stage.REVIEW: "review",
    Stage.FUNDING: "funding",
    Stage.WAITLISTED: "waitlist",
    Stage.AGREEMENT: "signatures",
    Stage.TRAVEL: "stay",
    Stage.REPORTING: "report",
    Stage.PAYMENT: "payment_sla",
}
# A bound on the rows one refresh reads: far above the stages (17) and any programme's partnerships.
MAX_ROWS = 10_000

_STAGES_SQL = "SELECT stage, count(*)::bigint AS count FROM exchanges GROUP BY stage ORDER BY stage LIMIT $1"
_LATE_SQL = """SELECT stage, count(*)::bigint AS count FROM exchanges
                WHERE next_deadline < now() AND stage <> ALL($1::text[])
                GROUP BY stage ORDER BY stage LIMIT $2"""


@dataclass(frozen=True)
class ProgrammeFigures:
    """One consistent reading of the programme: budgets, exchanges per stage, late exchanges per deadline."""

    budgets: list[PartnershipBalance]
    exchanges_by_stage: dict[str, int]
    late_by_deadline: dict[str, int]


async def programme_figures(pool: asyncpg.Pool) -> ProgrammeFigures:
    """Read the figures behind the gauges in one read-only snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        budgets = await LedgerStore(pool).partnership_balances(conn=conn)
        stages = await conn.fetch(_STAGES_SQL, MAX_ROWS)
        late = await conn.fetch(_LATE_SQL, [str(stage) for stage in TERMINAL_STAGES], MAX_ROWS)
    late_by_deadline: dict[str, int] = {}
    for row in late:
        deadline = STAGE_DEADLINES.get(row["stage"], str(row["stage"]).lower())
        late_by_deadline[deadline] = late_by_deadline.get(deadline, 0) + int(row["count"])
    return ProgrammeFigures(
        budgets=budgets,
        exchanges_by_stage={str(row["stage"]): int(row["count"]) for row in stages},
        late_by_deadline=late_by_deadline,
    )
