"""FUNDING's activities: the stage in one unit of work, the holds of the waitlist and of an amendment, the waitlist.

`fund_exchange` is FUNDING in one unit of work: the R7 claim, the price (R8), the hold, and AGREEMENT once it
is held.

One activity and one database transaction (docs/performance.md): the events the workflow recorded since
its last write (the review's decision, FUNDING entered) are written first; then the visitor organisation's
one visit is claimed (a live claim of another exchange refuses this one: the workflow ends it INELIGIBLE
under R7); the grant is priced from the policy (pure code); the hold is placed on the partnership's budget
(in a savepoint: a budget that cannot cover it refuses the hold only, and the workflow joins the
waitlist); and, held, the events `priced`, `funds_held` and AGREEMENT entered are written with the read
model's row and returned for the workflow to mirror. Every write is idempotent: a retry finds its claim,
its hold (same idempotency key) and its audit rows.

`LedgerActivities` (hold, rehold, void) are the holds placed outside that unit: by the partnership's Funds
workflow for the exchanges waiting on it (workflows/funding.py), and by TRAVEL when new dates re-price the
grant. `WaitlistActivities` join, leave and wake that Funds workflow.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.metrics import count
from activities.projection import transact, write_events
from activities.screening import claim
from ledger.errors import BudgetExhausted, LedgerError
from ledger.store import DbConnection, LedgerStore
from rules.pricing import price
from schemas.events import EventName, ProjectedEvent, ProjectionBatch
from schemas.funding import (
    FUNDS_WORKFLOW_TYPE,
    FundExchangeInput,
    FundExchangeResult,
    FundsReleasedInput,
    FundsState,
    HoldFundsInput,
    HoldFundsResult,
    JoinWaitlistInput,
    LeaveWaitlistInput,
    LeaveWaitlistResult,
    ReholdFundsInput,
    ReholdFundsResult,
    VoidHoldInput,
    VoidHoldResult,
    funds_workflow_id,
)
from schemas.stages import Stage

SYSTEM_ACTOR = "system"


def as_application_error(error: LedgerError) -> ApplicationError:
    return ApplicationError(str(error), type=error.code, non_retryable=True)


class LedgerActivities:
    """The holds on a partnership's budget outside `fund_exchange`: the waitlist's (Funds workflow), an
    amendment's rehold (TRAVEL) and a void. Each is one idempotent ledger write: business refusals (no
    budget) are results; permanent ledger refusals become non-retryable ApplicationErrors typed by the
    ledger error's code; transient database errors propagate so that Temporal retries them with the same
    idempotency key, which books nothing twice."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    @activity.defn(name="hold_funds")
    async def hold_funds(self, request: HoldFundsInput) -> HoldFundsResult:
        try:
            transfer = await self._store.hold(
                idempotency_key=request.idempotency_key,
                partnership_id=request.partnership_id,
                application_id=request.application_id,
                amount_cents=request.amount_cents,
            )
        except BudgetExhausted as refused:
            activity.logger.info("hold refused: budget exhausted", extra={"available_cents": refused.available_cents})
            return HoldFundsResult(held=False, available_cents=refused.available_cents)
        except LedgerError as error:
            raise as_application_error(error) from error
        if not transfer.replayed:
            count("cx_held_cents", transfer.amount_cents, "euro cents held", partnership=request.partnership_id)
        return HoldFundsResult(held=True, transfer_id=transfer.id)

    @activity.defn(name="rehold_funds")
    async def rehold_funds(self, request: ReholdFundsInput) -> ReholdFundsResult:
        """Void the old hold and place the new one in one transaction; refused means nothing changed."""
        try:
            transfer = await self._store.rehold(
                idempotency_key=request.idempotency_key, hold_id=request.hold_id, amount_cents=request.amount_cents
            )
        except BudgetExhausted as refused:
            return ReholdFundsResult(held=False, available_cents=refused.available_cents)
        except LedgerError as error:
            raise as_application_error(error) from error
        return ReholdFundsResult(held=True, transfer_id=transfer.id)

    @activity.defn(name="void_hold")
    async def void_hold(self, request: VoidHoldInput) -> VoidHoldResult:
        try:
            transfer = await self._store.void(idempotency_key=request.idempotency_key, hold_id=request.hold_id)
        except LedgerError as error:
            raise as_application_error(error) from error
        return VoidHoldResult(transfer_id=transfer.id, released_cents=transfer.amount_cents)


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
                    application_id=app.application_id,
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


class WaitlistActivities:
    """Talk to a partnership's Funds workflow from an exchange: activities, because a workflow cannot
    signal-with-start or send an update to another workflow itself. Joining and announcing a release use
    signal-with-start, so the waitlist exists exactly when needed; leaving is an update, so the exchange
    learns whether a hold was placed for it meanwhile (docs/adr/0008-waitlist-funds-workflow.md)."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def _signal_with_start(self, partnership_id: str, signal: str, argument: object) -> None:
        await self._client.start_workflow(
            FUNDS_WORKFLOW_TYPE,
            FundsState(partnership_id=partnership_id),
            id=funds_workflow_id(partnership_id),
            task_queue=self._task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=signal,
            start_signal_args=[argument],
        )

    @activity.defn(name="join_waitlist")
    async def join_waitlist(self, request: JoinWaitlistInput) -> None:
        await self._signal_with_start(request.partnership_id, "join", request.waiting)

    @activity.defn(name="announce_release")
    async def announce_release(self, request: FundsReleasedInput) -> None:
        await self._signal_with_start(request.partnership_id, "released", request)

    @activity.defn(name="leave_waitlist")
    async def leave_waitlist(self, request: LeaveWaitlistInput) -> LeaveWaitlistResult:
        handle = self._client.get_workflow_handle(funds_workflow_id(request.partnership_id))
        try:
            result: LeaveWaitlistResult = await handle.execute_update(
                "leave", request.application_id, result_type=LeaveWaitlistResult
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return LeaveWaitlistResult()  # no waitlist running: nothing was placed for anyone
            raise
        return result
