"""FUNDING (and WAITLISTED): the visit claimed (R7), the grant priced (R8) and held, or a place in line.

One activity does the stage's work in one transaction (activities/funding.py): the R7 claim, the price,
the hold and, held, AGREEMENT entered. When the partnership's budget cannot cover the grant the exchange
joins its partnership's FIFO waitlist (the `Funds` workflow, workflows/funding.py), which places the hold
itself when the exchange's turn comes and says so with the `funds_held` signal; at the waitlist deadline
the exchange leaves the line (adopting a hold placed at the last moment) or EXPIRES.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.funding import FundingActivities, WaitlistActivities
    from schemas.events import DeadlineKey, EventName
    from schemas.exchange import RuleFailure
    from schemas.funding import (
        FundExchangeInput,
        FundsHeldInput,
        FundsReleasedInput,
        JoinWaitlistInput,
        LeaveWaitlistInput,
        WaitingExchange,
    )
    from schemas.ids import hold_key
    from schemas.stages import Stage
    from workflows import options
    from workflows.exchange.context import SYSTEM_ACTOR, Ended, Exchange


class FundingStage:
    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.visit_claimed = False
        self.waitlisted = False
        self.funds_held: FundsHeldInput | None = None

    async def run(self) -> None:
        """Claim, price and hold in one unit of work; AGREEMENT is entered by it when the money is held."""
        ex = self.ex
        ex.enter(Stage.FUNDING, SYSTEM_ACTOR)
        signature_due = workflow.now() + timedelta(days=ex.policy.deadlines.signature_days)
        ex.entering = Stage.AGREEMENT
        async with ex.write_lock:
            result = await workflow.execute_activity_method(
                FundingActivities.fund_exchange,
                FundExchangeInput(
                    application=ex.app,
                    policy=ex.policy,
                    projection=ex.take_batch(),
                    hold_key=hold_key(ex.application_id),
                    first_sequence=ex.sequence + 1,
                    now=workflow.now(),
                    next_deadline=ex.next_deadline(),
                    signature_due=signature_due,
                ),
                **options.DATABASE,
            )
        ex.entering = None  # below: the stage is mirrored before anything else runs
        if not result.claimed:
            failure = RuleFailure(
                rule="R7",
                field="visitor.organisation_id",
                message=f"{ex.app.visitor.name} has already used its one visit in the scheme "
                f"(exchange {result.visit_holder or 'on record'}); an organisation may visit only once.",
            )
            ex.screening_failures = (*ex.screening_failures, failure)
            raise Ended(Stage.INELIGIBLE, f"R7 ({failure.field}): {failure.message}")
        self.visit_claimed = True
        assert result.pricing is not None
        ex.grant_cents = result.pricing.amount_cents
        if result.held:
            ex.hold_id, ex.held_cents = result.hold_id, result.pricing.amount_cents
        ex.adopt(result.events)
        if result.held:
            ex.deadlines[DeadlineKey.SIGNATURES] = signature_due
            ex.raise_if_stopped()
            return
        await self._wait_in_line(workflow.now() + timedelta(days=ex.policy.deadlines.waitlist_days))
        ex.raise_if_stopped()

    async def _wait_in_line(self, due: datetime) -> None:
        """WAITLISTED: join the partnership's FIFO; its Funds workflow places our hold when our turn comes."""
        ex = self.ex
        assert ex.grant_cents is not None
        ex.deadlines[DeadlineKey.WAITLIST] = due
        ex.enter(Stage.WAITLISTED, SYSTEM_ACTOR, "the partnership's budget cannot cover the grant")
        self.waitlisted = True
        await workflow.execute_activity_method(
            WaitlistActivities.join_waitlist,
            JoinWaitlistInput(
                partnership_id=ex.app.visitor_partnership_id,
                waiting=WaitingExchange(
                    application_id=ex.application_id,
                    amount_cents=ex.grant_cents,
                    hold_key=hold_key(ex.application_id),
                    joined_at=workflow.now(),
                ),
            ),
            **options.DATABASE,
        )
        if not await ex.wait_until(lambda: self.funds_held is not None, due):
            await self.leave_waitlist()  # a hold placed at the last moment is ours: then we go on
            if ex.hold_id is None:
                raise Ended(Stage.EXPIRED, f"no funds released in the partnership by {due.isoformat()}")
        self._take_waitlist_hold()
        self.waitlisted = False
        ex.deadlines.pop(DeadlineKey.WAITLIST, None)
        ex.record(
            EventName.FUNDS_HELD, SYSTEM_ACTOR, f"{ex.held_cents} cents held from the waitlist", {"hold_id": ex.hold_id}
        )

    def _take_waitlist_hold(self) -> None:
        if self.funds_held is not None and self.ex.hold_id is None:
            self.ex.hold_id, self.ex.held_cents = self.funds_held.hold_id, self.funds_held.amount_cents

    async def leave_waitlist(self) -> None:
        """Stop waiting; adopt any hold the waitlist placed for us (so closing voids it if we end)."""
        ex = self.ex
        left = await workflow.execute_activity_method(
            WaitlistActivities.leave_waitlist,
            LeaveWaitlistInput(partnership_id=ex.app.visitor_partnership_id, application_id=ex.application_id),
            **options.DATABASE,
        )
        self.waitlisted = False
        self._take_waitlist_hold()
        if left.hold_id is not None and ex.hold_id is None and ex.grant_cents is not None:
            ex.hold_id, ex.held_cents = left.hold_id, ex.grant_cents

    async def announce_release(self, reason: str) -> None:
        """Money came back to the budget: the partnership's waitlist may now serve its oldest exchange."""
        await workflow.execute_activity_method(
            WaitlistActivities.announce_release,
            FundsReleasedInput(partnership_id=self.ex.app.visitor_partnership_id, reason=reason),
            **options.DATABASE,
        )

    def on_funds_held(self, held: FundsHeldInput) -> None:
        if self.funds_held is None:
            self.funds_held = held
