"""The end of an exchange, whatever the stage: nothing left held, the visit given back when it never
happened, the terminal stage recorded, in one unit of work (activities/closing.py).

PAID, INELIGIBLE, REJECTED, EXPIRED, LAPSED, WITHDRAWN, CANCELLED and FORFEITED are results, not failures.
From the moment closing starts every update is refused; a place in the waitlist is left first (adopting a
hold placed at the last moment), so no money can stay held for an ended exchange.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.closing import ClosingActivities
    from schemas.closing import CloseExchangeInput
    from schemas.events import EventName
    from schemas.exchange import ExchangeOutcome
    from schemas.stages import Stage
    from workflows import options
    from workflows.exchange.context import SYSTEM_ACTOR, Ended, Exchange
    from workflows.exchange.funding import FundingStage
    from workflows.exchange.payment import PaymentStage
    from workflows.exchange.review import ReviewStage

# The stay never took place: the organisation keeps its one visit (CANCELLED: the policy decides).
VISIT_RELEASING_STAGES = frozenset({Stage.INELIGIBLE, Stage.REJECTED, Stage.EXPIRED, Stage.LAPSED, Stage.WITHDRAWN})


async def close(
    ex: Exchange, ended: Ended, review: ReviewStage, funding: FundingStage, payment: PaymentStage
) -> ExchangeOutcome:
    ex.closing = True  # from here on, every update is refused
    if funding.waitlisted:
        await funding.leave_waitlist()
    # In-flight update handlers (a report being checked) finish first: their events go with the close.
    await workflow.wait_condition(workflow.all_handlers_finished)
    review.close()
    hold_id = ex.hold_id
    hold_voided = None
    if hold_id is not None:
        ex.hold_id, ex.held_cents = None, 0
        hold_voided = ex.event(EventName.HOLD_VOIDED, SYSTEM_ACTOR)  # its reason names the amount voided
    ex.deadlines.clear()
    final = None
    if not ended.entered:
        ex.move_to(ended.stage, ended.actor_id, ended.reason, workflow.now())
        details = payment.paid_confirmation()
        final = ex.event(
            EventName.STAGE_ENTERED, ended.actor_id, ended.reason, details.model_dump(mode="json") if details else None
        )
    release = funding.visit_claimed and _releases_visit(ex, ended.stage)
    async with ex.write_lock:
        closed = await workflow.execute_activity_method(
            ClosingActivities.close_exchange,
            CloseExchangeInput(
                projection=ex.take_batch(payment.paid_confirmation() if ended.stage is Stage.PAID else None),
                hold_id=hold_id,
                hold_voided=hold_voided,
                release_visit_reason=ended.stage.value if release else None,
                final=final,
            ),
            **options.DATABASE,
        )
    ex.publish()
    if closed.released_cents > 0:
        await funding.announce_release(f"{ex.application_id} ended {ended.stage.value}")
    await ex.write()  # a signal recorded while closing (an ignored confirmation) is not lost
    await workflow.wait_condition(workflow.all_handlers_finished)
    return ExchangeOutcome(
        application_id=ex.application_id,
        stage=ended.stage,
        reason=ended.reason,
        grant_cents=ex.grant_cents,
        paid_cents=ex.paid_cents,
    )


def _releases_visit(ex: Exchange, stage: Stage) -> bool:
    """Exchanges that end without the stay taking place give the organisation its visit back (R7)."""
    if stage is Stage.CANCELLED:
        return not ex.policy.eligibility.cancelled_uses_visit
    return stage in VISIT_RELEASING_STAGES
