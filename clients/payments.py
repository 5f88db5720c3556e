"""PAYMENT as finance sees it: check a confirmation against the recorded order, list orders for reconciliation.

The REST API and the `cx` CLI both answer a confirmation here before anything reaches the workflow:
- an order that does not exist yet, or another order id or amount, is refused naming the field;
- a repeat after PAID with the same reference answers "already confirmed" (the workflow has ended and
  need not run; the order row is the truth);
- a different reference after PAID is a conflict.
Only a confirmation that matches an unconfirmed order is sent on as the `confirm_payment` signal; the
workflow checks it again (stage, order id, amount) and records an ignored one in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg

from schemas.exchange import ConfirmPaymentInput
from schemas.ids import payment_order_id


class ConfirmationConflict(Exception):
    """Finance already confirmed this order with another reference: a 409, never a silent overwrite."""


class ConfirmationRefused(Exception):
    """The confirmation names no order of this exchange, or the wrong one or amount; `field` says which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfirmationVerdict(StrEnum):
    SEND = "send"  # matches the unconfirmed order: send the signal
    ALREADY_CONFIRMED = "already_confirmed"  # a repeat of the recorded confirmation: nothing to do


@dataclass(frozen=True)
class PaymentOrder:
    payment_order_id: str
    application_id: str
    partnership_id: str
    amount_cents: int
    created_at: datetime
    sent_at: datetime | None
    confirmed_at: datetime | None
    payment_reference: str | None
    confirmed_by: str | None

    def state(self, now: datetime, sla_days: int) -> str:
        """pending (not yet delivered to finance), sent, confirmed, or overdue (unconfirmed past the SLA)."""
        if self.confirmed_at is not None:
            return "confirmed"
        if now - self.created_at > timedelta(days=sla_days):
            return "overdue"
        return "sent" if self.sent_at is not None else "pending"


_ORDER_COLUMNS = """p.payment_order_id, p.application_id, p.partnership_id, p.amount_cents, p.created_at,
       o.delivered_at AS sent_at, p.confirmed_at, p.payment_reference, p.confirmed_by"""
_ORDER_FROM = """payment_orders p
  LEFT JOIN outbox o ON o.dedup_key = 'payment-order:' || p.application_id"""


async def find_order(pool: asyncpg.Pool, application_id: str) -> PaymentOrder | None:
    query = f"SELECT {_ORDER_COLUMNS} FROM {_ORDER_FROM} WHERE p.application_id = $1"  # noqa: S608 - constant SQL
    row = await pool.fetchrow(query, application_id)
    return PaymentOrder(**dict(row)) if row else None


async def list_orders(pool: asyncpg.Pool, *, partnership_id: str | None = None, limit: int = 500) -> list[PaymentOrder]:
    rows = await pool.fetch(
        f"""SELECT {_ORDER_COLUMNS} FROM {_ORDER_FROM}
             WHERE $1::text IS NULL OR p.partnership_id = $1
             ORDER BY p.created_at, p.application_id LIMIT $2""",  # noqa: S608 - constant SQL, values as $n
        partnership_id,
        limit,
    )
    return [PaymentOrder(**dict(row)) for row in rows]


def check_confirmation(
    application_id: str, confirmation: ConfirmPaymentInput, order: PaymentOrder | None
) -> ConfirmationVerdict:
    """What to do with finance's confirmation of this exchange's order (see the module docstring)."""
    expected_id = payment_order_id(application_id)
    if confirmation.payment_order_id != expected_id:
        raise ConfirmationRefused(
            "payment_order_id", f"{confirmation.payment_order_id!r} is not this exchange's order ({expected_id!r})"
        )
    if order is None:
        raise ConfirmationRefused("payment_order_id", f"{expected_id!r} has not been ordered yet; nothing to confirm")
    if confirmation.amount_cents != order.amount_cents:
        raise ConfirmationRefused(
            "amount_cents", f"{confirmation.amount_cents} does not match the order's {order.amount_cents} cents"
        )
    if order.payment_reference is None:
        return ConfirmationVerdict.SEND
    if order.payment_reference == confirmation.payment_reference:
        return ConfirmationVerdict.ALREADY_CONFIRMED
    raise ConfirmationConflict(
        f"{expected_id} was already confirmed with reference {order.payment_reference!r} "
        f"(by {order.confirmed_by} at {order.confirmed_at:%Y-%m-%d %H:%M} UTC); "
        f"{confirmation.payment_reference!r} differs"
    )
