"""PAYMENT in one unit of work: the final price, the posting, the payout and the payment order, atomically.

The events the workflow recorded since its last write (the report's validation, PAYMENT entered) are
written first; the grant is priced again on the actual end date (pure code, never above the hold); the
hold is posted for that amount (the rest returns to the budget), paid out, and the payment order and its
outbox message are written; then `payment_ordered` with the read model's row. One transaction: a payment
order exists if and only if the money moved. Each write carries a business idempotency key, so a retried
or re-run activity books nothing new and finds the order it wrote before (exactly one payment order per
exchange, whatever crashes).
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.funding import as_application_error
from activities.metrics import count
from activities.outbox import enqueue, payment_order_dedup_key
from activities.projection import transact, write_events
from ledger.errors import LedgerError
from ledger.store import DbConnection, LedgerStore
from rules.pricing import price
from schemas.events import EventName, ProjectedEvent, ProjectionBatch
from schemas.funding import PricingResult
from schemas.ids import payment_order_id
from schemas.payment import PostPaymentInput, PostPaymentResult

SYSTEM_ACTOR = "system"


class PaymentActivities:
    def __init__(
        self, pool: asyncpg.Pool, store: LedgerStore, finance_webhook_url: str, notify_email: str | None = None
    ) -> None:
        self._pool = pool
        self._store = store
        self._finance_webhook_url = finance_webhook_url
        self._notify_email = notify_email

    @activity.defn(name="post_payment")
    async def post_payment(self, request: PostPaymentInput) -> PostPaymentResult:
        final = price(request.application, request.policy, request.actual_end_date)
        amount_cents = min(final.amount_cents, request.held_cents)  # never above the hold

        async def pay(conn: DbConnection, _: ProjectionBatch | None) -> PostPaymentResult:
            order_id, replayed = await self._book(conn, request, amount_cents)
            event = _payment_ordered(request, order_id, amount_cents, final)
            await write_events(conn, request.application, (event,), self._notify_email)
            if not replayed:
                count(
                    "cx_paid_cents",
                    amount_cents,
                    "euro cents paid",
                    partnership=request.application.visitor_partnership_id,
                )
            return PostPaymentResult(
                payment_order_id=order_id,
                posted_cents=amount_cents,
                released_cents=request.held_cents - amount_cents,
                final=final,
                event=event,
            )

        return await transact(self._pool, request.projection, pay, self._notify_email)

    async def _book(self, conn: DbConnection, request: PostPaymentInput, amount_cents: int) -> tuple[str, bool]:
        """Post the hold, pay out, write the order and its outbox message; (order id, whether a replay)."""
        app = request.application
        order_id = payment_order_id(app.application_id)
        try:
            posted = await self._store.post(
                idempotency_key=f"{request.idempotency_key}:post", hold_id=request.hold_id, amount_cents=amount_cents,
                conn=conn,
            )  # fmt: skip
            paid_out = await self._store.pay_out(
                idempotency_key=f"{request.idempotency_key}:pay_out", application_id=app.application_id,
                amount_cents=amount_cents, conn=conn,
            )  # fmt: skip
        except LedgerError as error:
            raise as_application_error(error) from error
        await conn.execute(
            """INSERT INTO payment_orders (payment_order_id, application_id, partnership_id, amount_cents,
                                           hold_id, post_transfer_id, payout_transfer_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (application_id) DO NOTHING""",
            order_id,
            app.application_id,
            app.visitor_partnership_id,
            amount_cents,
            request.hold_id,
            posted.id,
            paid_out.id,
        )
        # Finance learns of the order through the outbox, written in this same transaction:
        # the message exists if and only if the money moved (workers/dispatcher.py delivers it).
        await enqueue(
            conn,
            dedup_key=payment_order_dedup_key(app.application_id),
            topic="payment_order",
            channel="webhook",
            destination=self._finance_webhook_url,
            payload={
                "payment_order_id": order_id,
                "application_id": app.application_id,
                "partnership_id": app.visitor_partnership_id,
                "amount_cents": amount_cents,
                "currency": "EUR",
            },
        )
        return order_id, paid_out.replayed


def _payment_ordered(
    request: PostPaymentInput, order_id: str, amount_cents: int, final: PricingResult
) -> ProjectedEvent:
    """The audit event of the order, with the read model's row as it leaves it (nothing held, all paid)."""
    return ProjectedEvent(
        sequence=request.sequence,
        event=EventName.PAYMENT_ORDERED,
        stage=request.stage,
        at=request.now,
        actor_id=SYSTEM_ACTOR,
        reason=f"payment order {order_id}",
        details={
            "posted_cents": amount_cents,
            "released_cents": request.held_cents - amount_cents,
            "final_amount_cents": final.amount_cents,
            "final_breakdown": list(final.breakdown),
            "final_input_digest": final.input_digest,
        },
        grant_cents=request.grant_cents,
        held_cents=0,
        paid_cents=amount_cents,
        next_deadline=request.sla_due,
        policy_version=request.policy.version,
    )
