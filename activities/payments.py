"""PAYMENT: post the hold for the final amount, pay it out and record the payment order, atomically.

The three writes share one database transaction, so a payment order exists if and only if the money
moved; each carries a business idempotency key, so a retried or re-run activity books nothing new and
finds the order it wrote before (exactly one payment order per exchange, whatever crashes).
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.ledger import as_application_error
from activities.metrics import count
from activities.outbox import enqueue, payment_order_dedup_key
from ledger.errors import LedgerError
from ledger.store import LedgerStore
from schemas.activities import PostPaymentInput, PostPaymentResult
from schemas.ids import payment_order_id


class PaymentActivities:
    def __init__(self, pool: asyncpg.Pool, store: LedgerStore, finance_webhook_url: str) -> None:
        self._pool = pool
        self._store = store
        self._finance_webhook_url = finance_webhook_url

    @activity.defn(name="post_payment")
    async def post_payment(self, request: PostPaymentInput) -> PostPaymentResult:
        order_id = payment_order_id(request.exchange_id)
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                posted = await self._store.post(
                    idempotency_key=f"{request.idempotency_key}:post",
                    hold_id=request.hold_id,
                    amount_cents=request.amount_cents,
                    conn=conn,
                )
                paid_out = await self._store.pay_out(
                    idempotency_key=f"{request.idempotency_key}:pay_out",
                    exchange_id=request.exchange_id,
                    amount_cents=request.amount_cents,
                    conn=conn,
                )
            except LedgerError as error:
                raise as_application_error(error) from error
            hold_amount_cents: int = await conn.fetchval(
                "SELECT amount_cents FROM ledger_transfers WHERE id = $1", request.hold_id
            )
            await conn.execute(
                """INSERT INTO payment_orders (payment_order_id, application_id, partnership_id, amount_cents,
                                               hold_id, post_transfer_id, payout_transfer_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (application_id) DO NOTHING""",
                order_id,
                request.exchange_id,
                request.partnership_id,
                request.amount_cents,
                request.hold_id,
                posted.id,
                paid_out.id,
            )
            # Finance learns of the order through the outbox, written in this same transaction:
            # the message exists if and only if the money moved (workers/dispatcher.py delivers it).
            await enqueue(
                conn,
                dedup_key=payment_order_dedup_key(request.exchange_id),
                topic="payment_order",
                channel="webhook",
                destination=self._finance_webhook_url,
                payload={
                    "payment_order_id": order_id,
                    "application_id": request.exchange_id,
                    "partnership_id": request.partnership_id,
                    "amount_cents": request.amount_cents,
                    "currency": "EUR",
                },
            )
        if not paid_out.replayed:
            count("cx_paid_cents", request.amount_cents, "euro cents paid", partnership=request.partnership_id)
        return PostPaymentResult(
            payment_order_id=order_id,
            posted_cents=request.amount_cents,
            released_cents=hold_amount_cents - request.amount_cents,
        )
