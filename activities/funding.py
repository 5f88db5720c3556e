"""FUNDING in one unit of work: the R7 claim, the price (R8), the hold, and AGREEMENT once it is held.

One activity and one database transaction (docs/performance.md): the events the workflow recorded since
its last write (the review's decision, FUNDING entered) are written first; then the visitor organisation's
one visit is claimed (a live claim of another exchange refuses this one: the workflow ends it INELIGIBLE
under R7); the grant is priced from the policy (pure code); the hold is placed on the partnership's budget
(in a savepoint: a budget that cannot cover it refuses the hold only, and the workflow joins the
waitlist); and, held, the events `priced`, `funds_held` and AGREEMENT entered are written with the read
model's row and returned for the workflow to mirror. Every write is idempotent: a retry finds its claim,
its hold (same idempotency key) and its audit rows.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from temporalio import activity

from activities.ledger import as_application_error
from activities.metrics import count
from activities.outbox import DbConnection
from activities.projection import transact, write_events
from activities.screening import claim
from ledger.errors import BudgetExhausted, LedgerError
from ledger.store import LedgerStore
from rules.pricing import price
from schemas.activities import FundExchangeInput, FundExchangeResult
from schemas.events import EventName, ProjectedEvent, ProjectionBatch
from schemas.stages import Stage

SYSTEM_ACTOR = "system"


class FundingActivities:
    def __init__(self, pool: asyncpg.Pool, store: LedgerStore, notify_email: str | None = None) -> None:
        self._pool = pool
        self._store = store
        self._notify_email = notify_email

    @activity.defn(name="fund_exchange")
    async def fund_exchange(self, request: FundExchangeInput) -> FundExchangeResult:
        app = request.application

        async def fund(conn: DbConnection, _: ProjectionBatch | None) -> FundExchangeResult:
            if request.claim_visit:
                visit = await claim(conn, app.visitor.organisation_id, app.application_id)
                if not visit.claimed:
                    return FundExchangeResult(claimed=False, visit_holder=visit.held_by_application_id)
            pricing = price(app, request.policy)
            events = _Events(request, pricing.amount_cents)
            events.add(
                EventName.PRICED,
                f"lump sum {pricing.amount_cents} cents",
                {
                    "full_rate_cents": pricing.full_rate_cents,
                    "halved_because": list(pricing.halved_because),
                    "breakdown": list(pricing.breakdown),
                    "input_digest": pricing.input_digest,
                },
            )
            hold_id, available_cents = await self._hold(conn, request, pricing.amount_cents)
            if hold_id is not None:
                events.held_cents = pricing.amount_cents
                events.add(EventName.FUNDS_HELD, f"{pricing.amount_cents} cents held", {"hold_id": hold_id})
                events.stage, events.next_deadline = Stage.AGREEMENT, request.signature_due
                events.add(EventName.STAGE_ENTERED, "")
            await write_events(conn, app, tuple(events.written), self._notify_email)
            return FundExchangeResult(
                claimed=True, pricing=pricing, held=hold_id is not None, hold_id=hold_id,
                available_cents=available_cents, events=tuple(events.written),
            )  # fmt: skip

        return await transact(self._pool, request.projection, fund, self._notify_email)

    async def _hold(
        self, conn: DbConnection, request: FundExchangeInput, amount_cents: int
    ) -> tuple[int | None, int | None]:
        """The hold, in a savepoint: refused for want of budget, it rolls back alone (the claim stays)."""
        app = request.application
        try:
            async with conn.transaction():
                transfer = await self._store.hold(
                    idempotency_key=request.hold_key,
                    partnership_id=app.visitor_partnership_id,
                    exchange_id=app.application_id,
                    amount_cents=amount_cents,
                    conn=conn,
                )
        except BudgetExhausted as refused:
            activity.logger.info("hold refused: budget exhausted", extra={"available_cents": refused.available_cents})
            return None, refused.available_cents
        except LedgerError as error:
            raise as_application_error(error) from error
        if not transfer.replayed:
            count("cx_held_cents", transfer.amount_cents, "euro cents held", partnership=app.visitor_partnership_id)
        return transfer.id, None


class _Events:
    """FUNDING's own events, numbered after what the workflow recorded before the call."""

    def __init__(self, request: FundExchangeInput, grant_cents: int) -> None:
        self.request = request
        self.grant_cents = grant_cents
        self.held_cents = 0
        self.stage = Stage.FUNDING
        self.next_deadline: datetime | None = request.next_deadline
        self.written: list[ProjectedEvent] = []

    def add(self, name: EventName, reason: str, details: dict[str, object] | None = None) -> None:
        self.written.append(
            ProjectedEvent(
                sequence=self.request.first_sequence + len(self.written),
                event=name,
                stage=self.stage,
                at=self.request.now,
                actor_id=SYSTEM_ACTOR,
                reason=reason,
                details=details or {},
                grant_cents=self.grant_cents,
                held_cents=self.held_cents,
                next_deadline=self.next_deadline,
                policy_version=self.request.policy.version,
            )
        )
