"""`cx payments`: payment orders with their state, for finance's reconciliation (issue 10).

Reads the orders as clients/payments.py finds them (the order row, its outbox delivery, finance's
confirmation) and states each one against the payment SLA of the policy: pending (not delivered to
finance yet), sent, confirmed, or overdue (unconfirmed past the SLA). It changes nothing.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from clients.command import console, run
from clients.config import client_config
from clients.money import format_eur
from clients.payments import PaymentOrder, list_orders
from ledger.pool import postgres_pool
from schemas.policy import load_policy

MAX_ORDERS = 10_000  # a limit on everything: a longer list is narrowed with --partnership


class OrderState(StrEnum):
    """The states PaymentOrder.state answers (a test keeps the two in step)."""

    PENDING = "pending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    OVERDUE = "overdue"


def payments(
    ctx: typer.Context,
    partnership: Annotated[str | None, typer.Option("--partnership", help="only this partnership")] = None,
    state: Annotated[
        OrderState | None, typer.Option("--state", case_sensitive=False, help="only orders in this state")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the orders as JSON (amounts in cents)")] = False,
) -> None:
    """List payment orders with their state (pending, sent, confirmed, overdue), oldest first.

    Overdue means unconfirmed for longer than the policy's payment SLA (10 days in policy 2022.1).

    Example: cx payments --state overdue --partnership biginn
    """
    config = client_config(ctx)
    sla_days = load_policy().deadlines.payment_sla_days

    async def main() -> list[PaymentOrder]:
        async with postgres_pool(config.database_url(), timeout_s=0, max_size=2) as pool:
            return await list_orders(pool, partnership_id=partnership, limit=MAX_ORDERS)

    orders = run(main)
    now = datetime.now(UTC)
    rows = [(order, OrderState(order.state(now, sla_days))) for order in orders]
    if state is not None:
        rows = [(order, order_state) for order, order_state in rows if order_state is state]
    if as_json:
        sys.stdout.write(json.dumps([_as_json(order, order_state) for order, order_state in rows], indent=2) + "\n")
        return
    if not rows:
        which = f" {state.value}" if state else ""
        where = f" for partnership {partnership}" if partnership else ""
        console.print(f"no{which} payment orders{where}")
        return
    table = Table(title=f"payment orders (SLA {sla_days} days)")
    for column in ("order", "application", "partnership", "amount", "state", "ordered at (UTC)", "reference"):
        table.add_column(column, justify="right" if column == "amount" else "left", no_wrap=column == "amount")
    for order, order_state in rows:
        table.add_row(
            order.payment_order_id,
            order.application_id,
            order.partnership_id,
            format_eur(order.amount_cents),
            order_state.value,
            order.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            order.payment_reference or "",
        )
    console.print(table)
    total = sum(order.amount_cents for order, _ in rows)
    console.print(f"{len(rows)} order(s), {format_eur(total)}")
    if len(orders) == MAX_ORDERS:
        console.print(f"only the oldest {MAX_ORDERS} orders were read: narrow with --partnership")


def _as_json(order: PaymentOrder, state: OrderState) -> dict[str, object]:
    return {
        "payment_order_id": order.payment_order_id,
        "application_id": order.application_id,
        "partnership_id": order.partnership_id,
        "amount_cents": order.amount_cents,
        "state": state.value,
        "created_at": order.created_at.isoformat(),
        "sent_at": order.sent_at.isoformat() if order.sent_at else None,
        "confirmed_at": order.confirmed_at.isoformat() if order.confirmed_at else None,
        "payment_reference": order.payment_reference,
        "confirmed_by": order.confirmed_by,
    }
