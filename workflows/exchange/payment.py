"""PAYMENT (R11): one instalment after the exchange, ordered once, confirmed by finance within the SLA.

One activity prices the stay on its actual end date (never above the hold), posts the hold, pays out and
writes the payment order with its outbox message, in one transaction (activities/payments.py). Finance's
`confirm_payment` counts only here, for this exchange's order and exactly its amount; any other is
recorded as ignored, never remembered for later (docs/adr/0011-trust-at-the-edges.md). Unconfirmed at the
SLA: an alert; at the last limit: another alert, and the exchange ends in PAYMENT for people to settle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.payments import PaymentActivities
    from schemas.events import ConfirmedPayment, DeadlineKey, EventName
    from schemas.exchange import ConfirmPaymentInput
    from schemas.ids import payment_order_id
    from schemas.payment import PostPaymentInput
    from schemas.stages import Stage
    from workflows import options
    from workflows.exchange.context import SYSTEM_ACTOR, Ended, Exchange
    from workflows.exchange.funding import FundingStage


@dataclass(frozen=True)
class Confirmation:
    """Finance's confirmation as the workflow accepted it (order and amount checked on arrival)."""

    payment_reference: str
    confirmed_by: str
    amount_cents: int
    at: datetime


class PaymentStage:
    def __init__(self, ex: Exchange, funding: FundingStage) -> None:
        self.ex = ex
        self.funding = funding
        self.ordered: tuple[str, int] | None = None  # (payment order id, amount in cents) once ordered
        self.payment_order_id: str | None = None
        self.confirmation: Confirmation | None = None

    async def run(self, actual_end_date: date | None) -> None:
        ex = self.ex
        rules = ex.policy.deadlines
        ex.raise_if_stopped()  # a cancellation accepted together with the report's acceptance wins
        ex.enter(Stage.PAYMENT, SYSTEM_ACTOR)
        assert ex.hold_id is not None
        sla_due = workflow.now() + timedelta(days=rules.payment_sla_days)
        ex.deadlines[DeadlineKey.PAYMENT_SLA] = sla_due
        # From here a confirmation of this order counts (finance may answer before the activity's completion
        # reaches the workflow); its amount is the activity's, known once it returns.
        self.ordered = (payment_order_id(ex.application_id), 0)
        async with ex.write_lock:
            payment = await workflow.execute_activity_method(
                PaymentActivities.post_payment,
                PostPaymentInput(
                    application=ex.app,
                    policy=ex.policy,
                    actual_end_date=actual_end_date,
                    hold_id=ex.hold_id,
                    held_cents=ex.held_cents,
                    grant_cents=ex.grant_cents,
                    idempotency_key=f"{ex.application_id}:payment",
                    projection=ex.take_batch(),
                    sequence=ex.sequence + 1,
                    stage=ex.stage,
                    now=workflow.now(),
                    sla_due=sla_due,
                ),
                **options.DATABASE,
            )
        self.ordered = (payment.payment_order_id, payment.posted_cents)
        self.payment_order_id = payment.payment_order_id
        ex.paid_cents, ex.held_cents, ex.hold_id = payment.posted_cents, 0, None
        ex.adopt((payment.event,))
        early = self.confirmation
        if early is not None and early.amount_cents != payment.posted_cents:
            # Accepted while the order was being written, before its amount was known here: it did not match.
            self.confirmation = None
            ex.record(
                EventName.PAYMENT_CONFIRMATION_IGNORED,
                early.confirmed_by,
                f"amount_cents: {early.amount_cents} does not match the order's {payment.posted_cents}",
            )
        if payment.released_cents > 0:
            await self.funding.announce_release(
                f"{ex.application_id} paid {payment.released_cents} cents less than held"
            )
        last_due = workflow.now() + timedelta(days=rules.payment_confirmation_max_days)
        if not await ex.wait_until(self.confirmed, sla_due):
            ex.alert(EventName.PAYMENT_SLA_MISSED, f"finance has not confirmed by {sla_due.isoformat()}")
            if not await ex.wait_until(self.confirmed, last_due):
                ex.alert(EventName.PAYMENT_UNCONFIRMED, f"still unconfirmed at {last_due.isoformat()}")
                raise Ended(Stage.PAYMENT, "payment ordered but never confirmed by finance; see alerts")

    def confirmed(self) -> bool:
        return self.confirmation is not None

    def confirmed_by(self) -> str:
        return self.confirmation.confirmed_by if self.confirmation else SYSTEM_ACTOR

    def paid_confirmation(self) -> ConfirmedPayment | None:
        """On the way into PAID: finance's answer, for payment_orders and the audit row of that same step."""
        if self.confirmation is None or self.payment_order_id is None:
            return None
        return ConfirmedPayment(
            payment_order_id=self.payment_order_id,
            amount_cents=self.ex.paid_cents,
            payment_reference=self.confirmation.payment_reference,
            confirmed_by=self.confirmation.confirmed_by,
            confirmed_at=self.confirmation.at,
        )

    # --- the signal ----------------------------------------------------------------------------------------

    async def on_confirmation(self, payload: RawValue) -> None:
        """Finance's confirmation (ConfirmPaymentInput), decoded here so that one which does not parse is
        recorded as ignored instead of being dropped unseen. An ignored one is written at once: finance and
        ops look for it in the audit trail while the exchange may be waiting for weeks."""
        ex = self.ex
        try:
            confirmation: ConfirmPaymentInput = workflow.payload_converter().from_payload(
                payload.payload, ConfirmPaymentInput
            )
        except ApplicationError as error:
            ex.record(EventName.PAYMENT_CONFIRMATION_IGNORED, SYSTEM_ACTOR, error.message, {"refusal": error.type})
            await ex.write()
            return
        problem = self._problem(confirmation)
        if problem is None:
            self.confirmation = Confirmation(
                confirmation.payment_reference, confirmation.confirmed_by, confirmation.amount_cents, workflow.now()
            )
        elif problem:
            ex.record(
                EventName.PAYMENT_CONFIRMATION_IGNORED,
                confirmation.confirmed_by,
                problem,
                {"confirmation": confirmation.model_dump(mode="json"), "stage": ex.stage.value},
            )
            await ex.write()

    def _problem(self, confirmation: ConfirmPaymentInput) -> str | None:
        """Why a confirmation cannot count now (None: it counts; "": a repeat of the accepted one, nothing to say).

        Money moves only in order: a confirmation counts only in PAYMENT, for this exchange's order and
        its amount, and is never remembered for a later stage."""
        accepted = self.confirmation
        if accepted is not None:
            if accepted.payment_reference == confirmation.payment_reference:
                return ""
            return f"payment_reference: already confirmed as {accepted.payment_reference!r}"
        if self.ex.stage is not Stage.PAYMENT or self.ex.closing:
            return f"stage: a confirmation counts only in PAYMENT; this exchange is in {self.ex.stage.value}"
        if self.ordered is None:
            return "payment_order_id: no payment order has been issued yet"
        order_id, amount_cents = self.ordered
        if confirmation.payment_order_id != order_id:
            return f"payment_order_id: {confirmation.payment_order_id!r} is not this exchange's order {order_id!r}"
        if amount_cents and confirmation.amount_cents != amount_cents:
            return f"amount_cents: {confirmation.amount_cents} does not match the order's {amount_cents}"
        return None
